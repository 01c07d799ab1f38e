//! `edge-image`: board files and the image builder (issue 6). Being written: see image/README.md.
