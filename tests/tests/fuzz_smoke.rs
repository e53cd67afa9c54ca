//! The fuzz targets' smoke run on stable: every committed seed in `fuzz/corpus/<target>/`
//! plus deterministic mutations of them through the same bodies libFuzzer runs
//! (`surge_tests::fuzz`). The long coverage-guided runs are `scripts/fuzz` (nightly).

use std::path::Path;

/// Mutants per seed; enough to reach odd corners in a few seconds of a debug build.
const MUTANTS_PER_SEED: usize = 2_000;

fn seeds(target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"))
        {
            seeds.push(std::fs::read(&path)?);
        }
    }
    anyhow::ensure!(!seeds.is_empty(), "no seeds in {}", dir.display());
    Ok(seeds)
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutants() -> anyhow::Result<()> {
    for (name, body) in surge_tests::fuzz::TARGETS {
        let seeds = seeds(name)?;
        let mut mutator = surge_tests::fuzz::Mutator::new(0x5eed ^ name.len() as u64);
        let mut runs = 0usize;
        for (i, seed) in seeds.iter().enumerate() {
            body(seed);
            runs += 1;
            let other = &seeds[(i + 1) % seeds.len()];
            let mut current = seed.clone();
            for n in 0..MUTANTS_PER_SEED {
                // Walk away from the seed for a while, then restart from it.
                if n % 50 == 0 {
                    current = seed.clone();
                }
                current = mutator.mutate(&current, other);
                body(&current);
                runs += 1;
            }
        }
        eprintln!("{name}: {runs} inputs, no panic");
    }
    Ok(())
}

/// The Kafka answers' seeds are the exporter's own encodings of real answers
/// (`surge_exporter::fuzzing::kafka_answer_seeds`), written, not typed: with
/// `SURGE_WRITE_SEEDS=1` this writes them; otherwise it fails if the files differ.
#[test]
fn kafka_answer_seeds_are_generated() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/kafka_answer");
    let write = std::env::var_os("SURGE_WRITE_SEEDS").is_some();
    let seeds = surge_exporter::fuzzing::kafka_answer_seeds();
    anyhow::ensure!(!seeds.is_empty());
    for (name, bytes) in seeds {
        let path = dir.join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, &bytes)?;
        } else {
            anyhow::ensure!(
                std::fs::read(&path).ok().as_deref() == Some(bytes.as_slice()),
                "{} is not the generated seed (SURGE_WRITE_SEEDS=1 rewrites it)",
                path.display()
            );
        }
    }
    Ok(())
}
