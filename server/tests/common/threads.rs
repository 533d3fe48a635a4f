//! A test broker's threads as `/proc` shows them: names, the CPUs each may run on, and their
//! scheduling (nice value and policy).
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

/// A process's or thread's `/proc/.../stat` line, split after its command name (which may hold
/// spaces and parentheses, so the split is at the last ") ").
pub struct Stat {
    pub comm: String,
    /// From field 3 (state) on, as `proc(5)` numbers them.
    fields: Vec<String>,
}

impl Stat {
    /// Reads `path`; `None` if the thread ended meanwhile.
    pub fn read(path: &std::path::Path) -> Option<Stat> {
        let line = std::fs::read_to_string(path).ok()?;
        let (head, rest) = line.trim_end().rsplit_once(") ")?;
        let (_pid, comm) = head.split_once(" (")?;
        Some(Stat {
            comm: comm.to_string(),
            fields: rest.split(' ').map(str::to_string).collect(),
        })
    }

    /// Field `number` as `proc(5)` numbers them (from 1, pid).
    fn field(&self, number: usize) -> &str {
        &self.fields[number - 3]
    }

    /// The nice value (field 19).
    pub fn nice(&self) -> i32 {
        self.field(19).parse().unwrap()
    }

    /// The scheduling policy (field 41), as `sched(7)` numbers them.
    pub fn policy(&self) -> u32 {
        self.field(41).parse().unwrap()
    }
}

/// The nice value and scheduling policy of each of process `pid`'s threads named `name`.
pub fn scheduling_of_threads(pid: u32, name: &str) -> Vec<(i32, u32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Some(stat) = Stat::read(&task.path().join("stat")) {
            if stat.comm == name {
                found.push((stat.nice(), stat.policy()));
            }
        }
    }
    found
}
