//! Randomness as an argument. Protocol layers take `&mut dyn Entropy`;
//! production passes [`OsEntropy`] (the OS CSPRNG through `ring`), tests pass
//! [`SeededEntropy`], which exists only with the `sim` feature or under
//! `cfg(test)` so nothing seeded ships in a release build.

pub trait Entropy {
    /// Fill `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The operating system's CSPRNG.
pub struct OsEntropy {
    rng: ring::rand::SystemRandom,
}

impl OsEntropy {
    pub fn new() -> Self {
        OsEntropy { rng: ring::rand::SystemRandom::new() }
    }
}

impl Default for OsEntropy {
    fn default() -> Self {
        Self::new()
    }
}

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // SystemRandom only fails if the kernel's getrandom fails, which
        // leaves us with no safe way to continue.
        self.rng.fill(buf).expect("OS random number generator failed");
    }
}

/// Deterministic entropy for tests and simulators (SHA-256 in counter
/// mode over a seed). Not cryptographically meaningful; never in release.
#[cfg(any(test, feature = "sim"))]
pub struct SeededEntropy {
    seed: u64,
    counter: u64,
    block: [u8; 32],
    used: usize,
}

#[cfg(any(test, feature = "sim"))]
impl SeededEntropy {
    pub fn new(seed: u64) -> Self {
        SeededEntropy { seed, counter: 0, block: [0; 32], used: 32 }
    }
}

#[cfg(any(test, feature = "sim"))]
impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            if self.used == 32 {
                let mut input = [0u8; 16];
                input[..8].copy_from_slice(&self.seed.to_le_bytes());
                input[8..].copy_from_slice(&self.counter.to_le_bytes());
                self.counter += 1;
                let d = ring::digest::digest(&ring::digest::SHA256, &input);
                self.block.copy_from_slice(d.as_ref());
                self.used = 0;
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}
