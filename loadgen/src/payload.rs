//! Message values: slices of one pool of pseudo-random bytes (incompressible, like OMB's default
//! random payloads), sized fixed or uniformly at random, so producing costs one copy per message
//! and no allocation.
#![forbid(unsafe_code)]

use crate::workload::MessageSize;

const POOL_BYTES: usize = 4 << 20;
/// Where each producer's values begin in the pool, apart from the others' (a prime, so that
/// producers do not line up with each other's values).
const PRODUCER_SHIFT_BYTES: u64 = 1_048_573;

pub struct Payloads {
    pool: Vec<u8>,
    size: MessageSize,
}

impl Payloads {
    pub fn new(size: MessageSize) -> Self {
        let largest = match size {
            MessageSize::Fixed { bytes } => bytes,
            MessageSize::Uniform { max_bytes, .. } => max_bytes,
        };
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let pool = (0..POOL_BYTES + largest)
            .map(|_| {
                state = xorshift(state);
                (state >> 24) as u8
            })
            .collect();
        Self { pool, size }
    }

    /// The largest value [`Payloads::next`] returns.
    pub fn largest_bytes(&self) -> usize {
        self.pool.len() - POOL_BYTES
    }

    /// The value of message `index` of producer `producer`.
    pub fn next(&self, index: u64, producer: u32) -> &[u8] {
        let mix = xorshift(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(producer) ^ 1);
        let len = match self.size {
            MessageSize::Fixed { bytes } => bytes,
            MessageSize::Uniform {
                min_bytes,
                max_bytes,
            } => min_bytes + (mix % (max_bytes - min_bytes + 1) as u64) as usize,
        };
        // Each message's value starts where the one before it had room to end (room for the
        // largest value), wrapping at the pool's end. A batch's values are then neighbouring
        // slices of the pool, so filling it streams through memory: with a random start per
        // message the copy took 29% of a rated producer thread, three times the encoder's copy
        // of the same bytes (results/produce-ceiling/). No two values among 4 MiB of messages
        // overlap, so they stay incompressible together.
        let room = self.largest_bytes() as u64;
        let start = index
            .wrapping_mul(room)
            .wrapping_add(u64::from(producer) * PRODUCER_SHIFT_BYTES)
            % POOL_BYTES as u64;
        let start = start as usize;
        &self.pool[start..start + len]
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_distribution() {
        let fixed = Payloads::new(MessageSize::Fixed { bytes: 1000 });
        assert!((0..1000).all(|index| fixed.next(index, 0).len() == 1000));
        let uniform = Payloads::new(MessageSize::Uniform {
            min_bytes: 10,
            max_bytes: 20,
        });
        let lens: Vec<usize> = (0..10_000)
            .map(|index| uniform.next(index, 3).len())
            .collect();
        assert!(lens.iter().all(|len| (10..=20).contains(len)));
        assert!(lens.contains(&10) && lens.contains(&20), "both ends occur");
    }

    #[test]
    fn neighbouring_values_are_neighbouring_slices_that_never_overlap() {
        let payloads = Payloads::new(MessageSize::Fixed { bytes: 1000 });
        let pool_start = payloads.pool.as_ptr() as usize;
        let start = |index| payloads.next(index, 0).as_ptr() as usize - pool_start;
        for index in 0..(POOL_BYTES / 1000) as u64 - 1 {
            assert_eq!(start(index + 1), start(index) + 1000, "message {index}");
        }
        // Other producers' values come from elsewhere in the pool.
        assert_ne!(payloads.next(7, 1).as_ptr(), payloads.next(7, 0).as_ptr());
        // Values differ from message to message.
        assert_ne!(payloads.next(0, 0), payloads.next(1, 0));
    }
}
