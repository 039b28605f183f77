//! Reading a row's bytes at fixed indices (`out[x] = row[idx[x]]`): the column taps of a strong
//! downscale, which visit a few bytes out of every 16-byte stretch of the source row.
//!
//! The indices never change for a geometry, so [`ByteGather::new`] plans each block of 16 outputs
//! once: the bytes they read span at most [`MAX_CHUNKS`] 16-byte chunks from the block's first
//! index, and per chunk a byte-shuffle mask moves the wanted bytes into place (0x80 elsewhere). A
//! block then costs a load, a `pshufb` and an `or` per chunk instead of 16 indexed loads and
//! stores. The SSSE3 path runs where the resizer's SIMD path is on (AVX2 implies SSSE3); the
//! scalar loop is the portable path and the fallback for blocks that span more chunks or would read
//! past the end of the plane. Both read exactly the same bytes.

use super::convert::src_row;
use super::taps::Tap;
use crate::pixel::{PixelFormat, SrcImage};

/// Most 16-byte chunks one block of 16 outputs may span on the shuffle path (a 1920 → 640
/// downscale spans 3 for luma, a 3840 → 640 one 6).
const MAX_CHUNKS: usize = 8;

/// One block of 16 outputs on the shuffle path: where its bytes start, and its masks
/// (`masks[first..first + chunks]`). `chunks` 0: the block is read by the scalar loop.
#[derive(Debug, Clone, Copy)]
struct Block {
    base: u32,
    first: u32,
    chunks: u32,
}

/// A planned byte gather for one index list.
#[derive(Debug, Clone)]
pub(super) struct ByteGather {
    idx: Vec<u32>,
    /// The row must be longer than the largest index.
    need: usize,
    blocks: Vec<Block>,
    masks: Vec<[u8; 16]>,
}

impl ByteGather {
    pub(super) fn new(idx: impl IntoIterator<Item = usize>) -> ByteGather {
        let idx: Vec<u32> = idx
            .into_iter()
            .map(|i| u32::try_from(i).expect("row index fits in u32"))
            .collect();
        let need = idx.iter().max().map_or(0, |&m| m as usize + 1);
        let mut blocks = Vec::new();
        let mut masks = Vec::new();
        for block in idx.chunks_exact(16) {
            let base = *block.iter().min().expect("16 indices");
            let span = (block.iter().max().expect("16 indices") - base) as usize + 1;
            let chunks = span.div_ceil(16);
            if chunks > MAX_CHUNKS {
                blocks.push(Block {
                    base,
                    first: 0,
                    chunks: 0,
                });
                continue;
            }
            let first = masks.len() as u32;
            for k in 0..chunks {
                masks.push(std::array::from_fn(|j| {
                    let off = (block[j] - base) as usize;
                    if off / 16 == k {
                        (off % 16) as u8
                    } else {
                        0x80
                    }
                }));
            }
            blocks.push(Block {
                base,
                first,
                chunks: chunks as u32,
            });
        }
        ByteGather {
            idx,
            need,
            blocks,
            masks,
        }
    }

    /// Outputs (as many as indices).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.idx.len()
    }

    /// `out[x] = row[idx[x]]` for every index; `simd` picks the shuffle path where the CPU has
    /// it (the bytes are the same either way). Panics when `row` or `out` is too short.
    #[inline]
    pub(super) fn run(&self, row: &[u8], out: &mut [u8], simd: bool) {
        assert!(
            row.len() >= self.need,
            "gather row: {} bytes, need {}",
            row.len(),
            self.need
        );
        let out = &mut out[..self.idx.len()];
        #[cfg(target_arch = "x86_64")]
        if simd && std::is_x86_feature_detected!("ssse3") {
            // SAFETY: the CPU has SSSE3 (checked above).
            unsafe { self.run_ssse3(row, out) };
            return;
        }
        let _ = simd;
        self.scalar(row, out, 0, self.idx.len());
    }

    /// Outputs `from..to` one index at a time.
    #[inline(always)]
    fn scalar(&self, row: &[u8], out: &mut [u8], from: usize, to: usize) {
        for (o, &i) in out[from..to].iter_mut().zip(&self.idx[from..to]) {
            // SAFETY: every index is below `need` and `run` checked row.len() >= need.
            *o = unsafe { *row.get_unchecked(i as usize) };
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "ssse3")]
    unsafe fn run_ssse3(&self, row: &[u8], out: &mut [u8]) {
        use std::arch::x86_64::*;
        for (b, blk) in self.blocks.iter().enumerate() {
            let (base, chunks) = (blk.base as usize, blk.chunks as usize);
            if chunks == 0 || base + 16 * chunks > row.len() {
                self.scalar(row, out, 16 * b, 16 * b + 16);
                continue;
            }
            let masks = &self.masks[blk.first as usize..blk.first as usize + chunks];
            // SAFETY: the loads read row[base..base + 16·chunks], inside `row` (checked above);
            // the store writes out[16b..16b + 16], inside `out` (blocks cover whole 16s of it).
            unsafe {
                let src = row.as_ptr().add(base);
                let mut acc = _mm_setzero_si128();
                for (k, m) in masks.iter().enumerate() {
                    let v = _mm_loadu_si128(src.add(16 * k).cast());
                    let m = _mm_loadu_si128(m.as_ptr().cast());
                    acc = _mm_or_si128(acc, _mm_shuffle_epi8(v, m));
                }
                _mm_storeu_si128(out.as_mut_ptr().add(16 * b).cast(), acc);
            }
        }
        self.scalar(row, out, 16 * self.blocks.len(), self.idx.len());
    }
}

/// The column taps' gathers for YUV sources: luma at each tap's first and second pixel, and the
/// chroma under them (I420: `i/2` in its own plane; NV12: `2·(i/2)` in the interleaved plane,
/// U there and V one byte on).
#[derive(Debug, Clone)]
pub(super) struct YuvGathers {
    luma: [ByteGather; 2],
    i420: [ByteGather; 2],
    nv12: [ByteGather; 2],
}

impl YuvGathers {
    pub(super) fn new(xs: &[Tap]) -> YuvGathers {
        let at = |f: fn(usize) -> usize| {
            [
                ByteGather::new(xs.iter().map(|t| f(t.i0))),
                ByteGather::new(xs.iter().map(|t| f(t.i1))),
            ]
        };
        YuvGathers {
            luma: at(|i| i),
            i420: at(|i| i / 2),
            nv12: at(|i| i / 2 * 2),
        }
    }

    /// The Y, U, V samples of source row `y` at tap `tap` (0: first pixel, 1: second) of every
    /// output column.
    #[inline(always)]
    pub(super) fn gather(
        &self,
        src: &SrcImage,
        y: usize,
        tap: usize,
        out: [&mut [u8]; 3],
        simd: bool,
    ) {
        let [ty, tu, tv] = out;
        self.luma[tap].run(src_row(src, 0, y), ty, simd);
        if src.format == PixelFormat::Nv12 {
            let uv = src_row(src, 1, y / 2);
            self.nv12[tap].run(uv, tu, simd);
            self.nv12[tap].run(&uv[1..], tv, simd);
        } else {
            self.i420[tap].run(src_row(src, 1, y / 2), tu, simd);
            self.i420[tap].run(src_row(src, 2, y / 2), tv, simd);
        }
    }
}

/// The column taps' gathers for packed sources: per pixel size (3, 4), per byte offset of R, G
/// or B in the pixel (0–2; the 4th byte is never read), per tap.
#[derive(Debug, Clone)]
pub(super) struct PackedGathers {
    by_size: [[[ByteGather; 2]; 3]; 2],
}

impl PackedGathers {
    pub(super) fn new(xs: &[Tap]) -> PackedGathers {
        let at = |bpp: usize, off: usize| {
            [
                ByteGather::new(xs.iter().map(|t| t.i0 * bpp + off)),
                ByteGather::new(xs.iter().map(|t| t.i1 * bpp + off)),
            ]
        };
        PackedGathers {
            by_size: [3, 4].map(|bpp| std::array::from_fn(|off| at(bpp, off))),
        }
    }

    /// The bytes at offsets `o` (R, G, B) of `bpp`-byte pixels of `row` at tap `tap` of every
    /// output column, as planar rows.
    #[inline(always)]
    pub(super) fn gather(
        &self,
        row: &[u8],
        bpp: usize,
        o: [usize; 3],
        tap: usize,
        out: &mut [Vec<u8>; 3],
        simd: bool,
    ) {
        let g = &self.by_size[usize::from(bpp == 4)];
        for (c, t) in out.iter_mut().enumerate() {
            g[o[c]][tap].run(row, t, simd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both paths against the plain indexing, for index lists of every kind the taps produce.
    #[test]
    fn both_paths_read_the_indexed_bytes() {
        let row: Vec<u8> = (0..4000u32).map(|i| (i * 31 % 251) as u8).collect();
        let lists: Vec<Vec<usize>> = vec![
            (0..640).map(|x| 3 * x + 1).collect(),        // 1920 → 640 luma
            (0..640).map(|x| (3 * x + 1) >> 1).collect(), // its I420 chroma
            (0..640).map(|x| 6 * x + 2).collect(),        // 3840 → 640
            (0..100).map(|x| 37 * x).collect(),           // wider than MAX_CHUNKS: scalar
            (0..37).map(|x| x * 5 / 3).collect(),         // a tail of 5 after two blocks
            (0..5).collect(),                             // no whole block
            (0..40).map(|x| 3999 - (39 - x) * 2).collect(), // ends at the row's last byte
            vec![],
        ];
        for idx in lists {
            let g = ByteGather::new(idx.iter().copied());
            assert_eq!(g.len(), idx.len());
            let want: Vec<u8> = idx.iter().map(|&i| row[i]).collect();
            for simd in [false, true] {
                let mut out = vec![0xEEu8; idx.len() + 3];
                g.run(&row, &mut out, simd);
                assert_eq!(
                    &out[..idx.len()],
                    &want[..],
                    "simd {simd}, {:?}",
                    &idx[..idx.len().min(4)]
                );
                assert!(
                    out[idx.len()..].iter().all(|&b| b == 0xEE),
                    "wrote past the outputs"
                );
            }
        }
    }

    #[test]
    fn blocks_plan_the_fewest_chunks_and_fall_back_when_wide() {
        let g = ByteGather::new((0..640).map(|x| 3 * x + 1));
        assert_eq!(g.blocks.len(), 40);
        assert!(
            g.blocks.iter().all(|b| b.chunks == 3),
            "16 taps 3 apart span 46 bytes: 3 chunks"
        );
        let g = ByteGather::new((0..32).map(|x| 8 * x));
        assert!(
            g.blocks.iter().all(|b| b.chunks as usize == MAX_CHUNKS),
            "121 bytes: 8 chunks"
        );
        let g = ByteGather::new((0..32).map(|x| 9 * x));
        assert!(
            g.blocks.iter().all(|b| b.chunks == 0),
            "136 bytes is more than 8 chunks"
        );
    }

    #[test]
    #[should_panic(expected = "gather row")]
    fn a_short_row_is_refused() {
        ByteGather::new([0, 9]).run(&[0; 9], &mut [0; 2], true);
    }
}
