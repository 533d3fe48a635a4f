//! Where a message goes: round-robin, sticky (a batch's worth to one partition, then the next), or
//! by key with murmur2 exactly as the Java client computes it, so keyed messages land where Java
//! producers would put them.
#![forbid(unsafe_code)]

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a keyed message.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has partitions");
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

/// How messages without an explicit partition are spread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioner {
    RoundRobin {
        next: u32,
    },
    /// The same partition until `batch_messages` went there, then the next one.
    Sticky {
        current: u32,
        sent: u32,
        batch_messages: u32,
    },
    Key,
}

impl Partitioner {
    /// The partition of the next message (`key` is used by [`Partitioner::Key`] only).
    pub fn next(&mut self, key: Option<&[u8]>, partitions: u32) -> u32 {
        assert!(partitions > 0, "a topic has partitions");
        match self {
            Self::RoundRobin { next } => {
                let partition = *next % partitions;
                *next = next.wrapping_add(1);
                partition
            }
            Self::Sticky {
                current,
                sent,
                batch_messages,
            } => {
                if *sent >= *batch_messages {
                    *current = current.wrapping_add(1);
                    *sent = 0;
                }
                *sent += 1;
                *current % partitions
            }
            Self::Key => partition_for_key(key.unwrap_or_default(), partitions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Apache Kafka's UtilsTest.testMurmur2 vectors: keys must land where Java producers put them.
        let vectors: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, hash) in vectors {
            assert_eq!(murmur2(key), hash, "{}", String::from_utf8_lossy(key));
        }
        // toPositive(-790332482) = 1357151166; % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
    }

    #[test]
    fn round_robin_and_sticky_spread_messages() {
        // Round robin visits every partition in turn; sticky fills a batch before moving on.
        let mut round_robin = Partitioner::RoundRobin { next: 0 };
        let picks: Vec<u32> = (0..6).map(|_| round_robin.next(None, 3)).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        let mut sticky = Partitioner::Sticky {
            current: 0,
            sent: 0,
            batch_messages: 2,
        };
        let picks: Vec<u32> = (0..6).map(|_| sticky.next(None, 3)).collect();
        assert_eq!(picks, vec![0, 0, 1, 1, 2, 2]);
        let mut by_key = Partitioner::Key;
        assert_eq!(by_key.next(Some(b"foobar"), 50), 16);
    }
}
