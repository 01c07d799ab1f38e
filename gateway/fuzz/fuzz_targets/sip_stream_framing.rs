//! Stream framing: never a panic, never a frame larger than the limit, and the frames do not depend on
//! how the stream was cut into reads (the first byte picks a cut).
#![no_main]

use edge_sip::framing::{Frame, FramingError, StreamFramer};
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 4096;

fn run(chunks: &[&[u8]]) -> Vec<Result<Frame, FramingError>> {
    let mut f = StreamFramer::new(LIMIT);
    let mut out = Vec::new();
    for c in chunks {
        f.push(c);
        loop {
            match f.next_frame() {
                Ok(Some(frame)) => {
                    if let Frame::Message(m) = &frame {
                        assert!(m.len() <= LIMIT);
                    }
                    out.push(Ok(frame));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, stream)) = data.split_first() else { return };
    let whole = run(&[stream]);
    let cut = usize::from(pick) * stream.len() / 255;
    let (a, b) = stream.split_at(cut.min(stream.len()));
    assert_eq!(run(&[a, b]), whole, "frames depend on the cut at {cut}");
});
