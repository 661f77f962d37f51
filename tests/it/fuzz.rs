//! The fuzz targets' smoke run, on stable and on every CI run: each
//! target's seed corpus (`fuzz/corpus/<target>/`) and a few hundred
//! deterministic mutations of each seed (bit flips, interesting bytes,
//! insertions, deletions, duplications, truncations, splices with another
//! seed) go through `roomcast::fuzz`, which must return for every one. A
//! failing input is written to `target/fuzz-smoke/<target>-<n>` for
//! `cargo +nightly fuzz run <target> <that file>`. Longer, coverage-guided
//! runs: README "Fuzzing".

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::support::*;

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = b"\x00\xff\x7f\x80\"\\{}[]:,0123456789-+.eE \n{{}}#/>^~*";

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = b.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| INTERESTING[rng.below(INTERESTING.len())])
                    .collect();
                b.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(32)).min(len);
                b.drain(i..j);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(64)).min(len);
                let copy = b[i..j].to_vec();
                let at = rng.below(len + 1);
                b.splice(at..at, copy);
            }
            5 => b.truncate(rng.below(len + 1)),
            _ if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    b
}

#[test]
fn fuzz_targets_survive_their_corpus_and_mutations() {
    let out = repo().join("target/fuzz-smoke");
    let mut failures = Vec::new();
    for (t, target) in roomcast::fuzz::TARGETS.iter().enumerate() {
        let dir = repo().join("fuzz/corpus").join(target);
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .map(|e| std::fs::read(e.path()).expect("seed"))
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "{target}: no seeds");
        // Loading a template directory is the slow one.
        let per_seed = if *target == "templates" { 40 } else { 300 };
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
        let mut n = 0usize;
        for (i, seed) in seeds.iter().enumerate() {
            let other = &seeds[(i + 1) % seeds.len()];
            let inputs = std::iter::once(seed.clone())
                .chain((0..per_seed).map(|_| mutate(&mut rng, seed, other)));
            for input in inputs {
                n += 1;
                let ok = catch_unwind(AssertUnwindSafe(|| roomcast::fuzz::run(target, &input)));
                if ok.is_err() {
                    std::fs::create_dir_all(&out).expect("out dir");
                    let file = out.join(format!("{target}-{n}"));
                    std::fs::write(&file, &input).expect("write failure");
                    failures.push(file.display().to_string());
                }
            }
        }
        eprintln!("fuzz smoke: {target}: {n} inputs");
    }
    assert!(failures.is_empty(), "inputs that panicked: {failures:#?}");
}
