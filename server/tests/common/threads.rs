//! A test broker's threads as `/proc` shows them: names and the CPUs each may run on.
#![forbid(unsafe_code)]

/// Parses a `Cpus_allowed_list` ("0-3,6") into its CPUs.
pub fn cpus(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for range in list.trim().split(',').filter(|range| !range.is_empty()) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        cpus.extend(first.parse::<usize>().unwrap()..=last.parse::<usize>().unwrap());
    }
    cpus
}

/// The CPUs a thread (or, for the main thread, the process) may run on, from its
/// `/proc/.../status`.
pub fn allowed_cpus(status: &str) -> Vec<usize> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .expect("a Cpus_allowed_list line");
    cpus(line)
}

/// A thread of the broker: its id, its name and the CPUs it may run on.
pub struct Thread {
    pub id: u32,
    pub name: String,
    pub cpus: Vec<usize>,
}

/// The broker's threads and the CPUs its process (its main thread) may use.
pub fn broker_threads(broker: &super::Broker) -> (Vec<Thread>, Vec<usize>) {
    let pid = broker.child.id();
    let process = allowed_cpus(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap());
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        threads.push(Thread {
            id: task.file_name().unwrap().to_str().unwrap().parse().unwrap(),
            name: name.trim().to_string(),
            cpus: allowed_cpus(&status),
        });
    }
    (threads, process)
}
