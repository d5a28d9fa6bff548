//! Every committed fuzz corpus input (`fuzz/corpus/TARGET/*`) through its
//! target, in every test run: what the long campaigns of `fuzz/run.sh`
//! found, and the seeds, stay fixed. Each must return (an error is fine)
//! without a panic, within a second, and writing nothing outside its
//! scratch directory (the targets check that themselves).

use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn every_corpus_input_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut count = 0;
    for (name, target) in nixoci::fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}: every target has a corpus", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{}: an empty corpus", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let start = Instant::now();
            target(&data);
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "{}: {took:?}, over the 1 s an input may take",
                input.display()
            );
            count += 1;
        }
    }
    assert!(count >= 20, "{count} inputs");
}
