//! YOLO-style letterbox geometry: one scale, rounded resized size, evenly split padding.
//!
//! For a `w×h` frame and a `W×H` tensor: `r = min(W/w, H/h)` (capped at 1 with `scale_up = false`),
//! resized size `new_w = round(w·r)`, `new_h = round(h·r)`, padding `pad_x = (W − new_w)/2` (float),
//! and the image placed at column `round(pad_x − 0.1)`, row `round(pad_y − 0.1)` (as Ultralytics'
//! LetterBox does). Because `new_w/w` may differ slightly from `r`, coordinates map with the exact
//! per-axis scales `sx = new_w/w`, `sy = new_h/h`: `x_t = x·sx + left`, `x = (x_t − left)/sx`.
//!
//! With a region of interest (`tritonletterbox roi=`) the `w×h` source is that region of the
//! frame, whose top-left corner is at `(origin_x, origin_y)`: frame points map with the origin
//! subtracted first, and tensor points map back into full-frame coordinates, clamped to the region.

/// A letterbox transform between frame pixels and tensor pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub src_w: u32,
    pub src_h: u32,
    pub dst_w: u32,
    pub dst_h: u32,
    /// The single scale `r`.
    pub scale: f64,
    /// Resized image size inside the tensor.
    pub new_w: u32,
    pub new_h: u32,
    /// Float padding `(W − new_w)/2`, `(H − new_h)/2`.
    pub pad_x: f64,
    pub pad_y: f64,
    /// Column/row where the resized image starts.
    pub left: u32,
    pub top: u32,
    /// Frame pixel of the source's top-left corner: (0, 0) for the whole frame, the region's
    /// corner for a region of interest.
    pub origin_x: u32,
    pub origin_y: u32,
    /// Size of the whole frame: the source's size, or the frame the region is in.
    pub frame_w: u32,
    pub frame_h: u32,
}

impl Letterbox {
    /// Computes the transform. Sizes must be non-zero.
    pub fn new(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, scale_up: bool) -> Letterbox {
        assert!(
            src_w > 0 && src_h > 0 && dst_w > 0 && dst_h > 0,
            "letterbox sizes must be non-zero"
        );
        let mut r = (dst_w as f64 / src_w as f64).min(dst_h as f64 / src_h as f64);
        if !scale_up {
            r = r.min(1.0);
        }
        let new_w = ((src_w as f64 * r).round() as u32).clamp(1, dst_w);
        let new_h = ((src_h as f64 * r).round() as u32).clamp(1, dst_h);
        let pad_x = (dst_w - new_w) as f64 / 2.0;
        let pad_y = (dst_h - new_h) as f64 / 2.0;
        let left = ((pad_x - 0.1).round().max(0.0) as u32).min(dst_w - new_w);
        let top = ((pad_y - 0.1).round().max(0.0) as u32).min(dst_h - new_h);
        Letterbox {
            src_w,
            src_h,
            dst_w,
            dst_h,
            scale: r,
            new_w,
            new_h,
            pad_x,
            pad_y,
            left,
            top,
            origin_x: 0,
            origin_y: 0,
            frame_w: src_w,
            frame_h: src_h,
        }
    }

    /// The same transform for a source that is the region of a `frame_w×frame_h` frame starting
    /// at `(x, y)`.
    pub fn at(self, x: u32, y: u32, frame_w: u32, frame_h: u32) -> Letterbox {
        Letterbox {
            origin_x: x,
            origin_y: y,
            frame_w,
            frame_h,
            ..self
        }
    }

    /// Exact horizontal scale `new_w / src_w`.
    pub fn scale_x(&self) -> f64 {
        self.new_w as f64 / self.src_w as f64
    }

    /// Exact vertical scale `new_h / src_h`.
    pub fn scale_y(&self) -> f64 {
        self.new_h as f64 / self.src_h as f64
    }

    /// Frame point → tensor point.
    pub fn to_tensor(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.origin_x as f64) * self.scale_x() + self.left as f64,
            (y - self.origin_y as f64) * self.scale_y() + self.top as f64,
        )
    }

    /// Tensor point → frame point (not clamped).
    pub fn to_frame(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.left as f64) / self.scale_x() + self.origin_x as f64,
            (y - self.top as f64) / self.scale_y() + self.origin_y as f64,
        )
    }

    /// Tensor box `x1,y1,x2,y2` → frame box, clamped to the source (the frame, or the region).
    pub fn box_to_frame(&self, b: [f64; 4]) -> [f64; 4] {
        let (x1, y1) = self.to_frame(b[0], b[1]);
        let (x2, y2) = self.to_frame(b[2], b[3]);
        let (x0, y0) = (self.origin_x as f64, self.origin_y as f64);
        let (x_end, y_end) = (x0 + self.src_w as f64, y0 + self.src_h as f64);
        [
            x1.clamp(x0, x_end),
            y1.clamp(y0, y_end),
            x2.clamp(x0, x_end),
            y2.clamp(y0, y_end),
        ]
    }

    /// Whether a frame box reaches an edge of the region (within `tolerance` frame pixels) that
    /// lies inside the frame: the region cut the object there. Never for a whole frame.
    pub fn cuts(&self, b: [f64; 4], tolerance: f64) -> bool {
        let (x0, y0) = (self.origin_x as f64, self.origin_y as f64);
        let (x1, y1) = (x0 + self.src_w as f64, y0 + self.src_h as f64);
        (self.origin_x > 0 && b[0] <= x0 + tolerance)
            || (self.origin_y > 0 && b[1] <= y0 + tolerance)
            || (self.origin_x + self.src_w < self.frame_w && b[2] >= x1 - tolerance)
            || (self.origin_y + self.src_h < self.frame_h && b[3] >= y1 - tolerance)
    }

    /// Frame box → tensor box.
    pub fn box_to_tensor(&self, b: [f64; 4]) -> [f64; 4] {
        let (x1, y1) = self.to_tensor(b[0], b[1]);
        let (x2, y2) = self.to_tensor(b[2], b[3]);
        [x1, y1, x2, y2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_example_1280x720_to_640() {
        let l = Letterbox::new(1280, 720, 640, 640, true);
        assert_eq!(l.scale, 0.5);
        assert_eq!((l.new_w, l.new_h), (640, 360));
        assert_eq!((l.pad_x, l.pad_y), (0.0, 140.0));
        assert_eq!((l.left, l.top), (0, 140));
        assert_eq!(l.to_tensor(100.0, 100.0), (50.0, 190.0));
    }

    #[test]
    fn odd_sizes_and_no_scale_up() {
        let l = Letterbox::new(641, 479, 640, 640, true);
        assert_eq!((l.new_w, l.new_h), (640, 478));
        assert_eq!((l.pad_y, l.top), (81.0, 81));
        let small = Letterbox::new(320, 200, 640, 640, false);
        assert_eq!(
            (small.scale, small.new_w, small.new_h, small.left, small.top),
            (1.0, 320, 200, 160, 220)
        );
        let up = Letterbox::new(320, 200, 640, 640, true);
        assert_eq!((up.new_w, up.new_h), (640, 400));
    }

    #[test]
    fn fractional_padding_puts_the_odd_pixel_at_the_bottom_and_right() {
        // Worked by hand: 640×481 into 640×640 keeps r = 1 (no scale-up needed on x) and leaves
        // 159 rows of padding: pad_y = 79.5, the image starts at row round(79.5 − 0.1) = 79 and
        // ends at row 560, so 79 rows of padding above and 80 below (Ultralytics' LetterBox:
        // top = round(dh − 0.1), bottom = round(dh + 0.1)).
        let l = Letterbox::new(640, 481, 640, 640, true);
        assert_eq!((l.scale, l.new_w, l.new_h), (1.0, 640, 481));
        assert_eq!((l.pad_x, l.pad_y), (0.0, 79.5));
        assert_eq!((l.left, l.top), (0, 79));
        assert_eq!(l.dst_h - l.top - l.new_h, 80);
        assert_eq!(l.to_tensor(0.0, 0.0), (0.0, 79.0));
        assert_eq!(l.to_tensor(640.0, 481.0), (640.0, 560.0));
        // The same along x, with a scale: 963×640 into 640×640 is r = 640/963, new_w = 640,
        // new_h = round(425.34) = 425, pad_y = 107.5 → top 107, bottom 108.
        let l = Letterbox::new(963, 640, 640, 640, true);
        assert_eq!((l.new_w, l.new_h), (640, 425));
        assert_eq!((l.pad_y, l.top), (107.5, 107));
        let l = Letterbox::new(481, 640, 640, 640, true);
        assert_eq!((l.pad_x, l.left, l.top), (79.5, 79, 0));
        // A small odd frame without scale-up: 3×2 into 8×8: pad 2.5 and 3.0 → left 2, top 3.
        let l = Letterbox::new(3, 2, 8, 8, false);
        assert_eq!((l.new_w, l.new_h, l.pad_x, l.pad_y), (3, 2, 2.5, 3.0));
        assert_eq!((l.left, l.top), (2, 3));
    }

    #[test]
    fn boxes_map_through_exact_per_axis_scales() {
        // 1919×1080 → 640: r = 640/1919, new 640×360 (1080·r = 360.19 rounds to 360), so the
        // vertical scale is 360/1080 = 1/3, not r, and the image starts at row 140.
        let l = Letterbox::new(1919, 1080, 640, 640, true);
        assert_eq!((l.new_w, l.new_h, l.left, l.top), (640, 360, 0, 140));
        let b = l.box_to_tensor([959.5, 540.0, 1919.0, 1080.0]);
        assert_eq!(b, [320.0, 320.0, 640.0, 500.0]);
        assert_eq!(l.box_to_frame(b), [959.5, 540.0, 1919.0, 1080.0]);
        // Clamping: a tensor box reaching into the padding ends at the frame's edges.
        assert_eq!(
            l.box_to_frame([-5.0, 100.0, 700.0, 520.0]),
            [0.0, 0.0, 1919.0, 1080.0]
        );
    }

    #[test]
    fn a_region_maps_back_into_full_frame_coordinates_clamped_to_the_region() {
        // The region 400,300 320×240 of a 1920×1080 frame into 640×640: r = 2, 640×480, top 80.
        let l = Letterbox::new(320, 240, 640, 640, true).at(400, 300, 1920, 1080);
        assert_eq!((l.new_w, l.new_h, l.left, l.top), (640, 480, 0, 80));
        // The frame the region is cut from travels with it (the tensor meta's frame size).
        assert_eq!(
            (l.src_w, l.src_h, l.frame_w, l.frame_h),
            (320, 240, 1920, 1080)
        );
        assert_eq!(l.to_tensor(400.0, 300.0), (0.0, 80.0));
        assert_eq!(l.to_tensor(720.0, 540.0), (640.0, 560.0));
        let b = [410.0, 310.0, 500.5, 400.25];
        assert_eq!(l.box_to_tensor(b), [20.0, 100.0, 201.0, 280.5]);
        assert_eq!(l.box_to_frame(l.box_to_tensor(b)), b);
        // A box reaching into the padding ends at the region's edges, not the frame's.
        assert_eq!(
            l.box_to_frame([-10.0, 0.0, 700.0, 600.0]),
            [400.0, 300.0, 720.0, 540.0]
        );
    }

    #[test]
    fn a_box_is_cut_only_at_region_edges_inside_the_frame() {
        // The region 400,300 320×240 of a 1920×1080 frame: all four edges inside the frame.
        let l = Letterbox::new(320, 240, 640, 640, true).at(400, 300, 1920, 1080);
        assert!(!l.cuts([420.0, 320.0, 700.0, 520.0], 1.0));
        assert!(l.cuts([400.5, 320.0, 700.0, 520.0], 1.0));
        assert!(l.cuts([420.0, 300.0, 700.0, 520.0], 1.0));
        assert!(l.cuts([420.0, 320.0, 719.5, 520.0], 1.0));
        assert!(l.cuts([420.0, 320.0, 700.0, 540.0], 1.0));
        assert!(!l.cuts([402.0, 320.0, 700.0, 520.0], 1.0));
        assert!(l.cuts([402.0, 320.0, 700.0, 520.0], 2.5));
        // The tolerance widens each edge by its own amount, inward (a fraction of a pixel too).
        assert!(l.cuts([400.25, 320.0, 700.0, 520.0], 0.5));
        assert!(l.cuts([420.0, 300.25, 700.0, 520.0], 0.5));
        assert!(l.cuts([420.0, 320.0, 719.75, 520.0], 0.5));
        assert!(l.cuts([420.0, 320.0, 700.0, 539.75], 0.5));
        assert!(!l.cuts([420.0, 320.0, 700.0, 539.25], 0.5));
        assert!(!l.cuts([420.0, 320.0, 719.25, 520.0], 0.5));
        // A region in the frame's corner: its edges on the frame's edges cut nothing.
        let corner = Letterbox::new(320, 240, 640, 640, true).at(0, 0, 320, 480);
        assert!(!corner.cuts([0.0, 0.0, 320.0, 100.0], 1.0));
        assert!(corner.cuts([0.0, 0.0, 320.0, 240.0], 1.0));
        let right = Letterbox::new(320, 240, 640, 640, true).at(320, 240, 640, 480);
        assert!(!right.cuts([330.0, 250.0, 640.0, 480.0], 1.0));
        // A whole frame cuts nothing.
        let whole = Letterbox::new(320, 240, 640, 640, true);
        assert!(!whole.cuts([0.0, 0.0, 320.0, 240.0], 1.0));
    }

    proptest! {
        #[test]
        fn a_region_round_trips_within_a_pixel(
            fw in 2u32..=4096, fh in 2u32..=4096, x in 0u32..4096, y in 0u32..4096,
            w in 1u32..=4096, h in 1u32..=4096, d in 32u32..=1280,
            bx in 0.0f64..1.0, by in 0.0f64..1.0, bw in 0.0f64..1.0, bh in 0.0f64..1.0,
        ) {
            let (x, y) = (x % fw, y % fh);
            let (w, h) = (w.min(fw - x), h.min(fh - y));
            let l = Letterbox::new(w, h, d, d, true).at(x, y, fw, fh);
            let x1 = x as f64 + bx * w as f64;
            let y1 = y as f64 + by * h as f64;
            let b = [x1, y1, x1 + bw * (x + w) as f64 - bw * x1, y1 + bh * (y + h) as f64 - bh * y1];
            let back = l.box_to_frame(l.box_to_tensor(b));
            for k in 0..4 {
                prop_assert!((back[k] - b[k]).abs() <= 1e-6 * fw.max(fh) as f64, "{b:?} -> {back:?}");
            }
        }

        #[test]
        fn forward_then_inverse_is_identity(
            sw in 1u32..=8192, sh in 1u32..=8192, dw in 1u32..=2048, dh in 1u32..=2048, up in any::<bool>()
        ) {
            let l = Letterbox::new(sw, sh, dw, dh, up);
            prop_assert!(l.pad_x >= 0.0 && l.pad_y >= 0.0);
            prop_assert!(l.left + l.new_w <= dw && l.top + l.new_h <= dh);
            prop_assert!(l.new_w >= 1 && l.new_h >= 1);
            for (x, y) in [(0.0, 0.0), (sw as f64, 0.0), (0.0, sh as f64), (sw as f64, sh as f64)] {
                let (tx, ty) = l.to_tensor(x, y);
                prop_assert!(tx >= -1e-6 && tx <= dw as f64 + 1e-6 && ty >= -1e-6 && ty <= dh as f64 + 1e-6);
                // The inverse is exact (same per-axis scales both ways): only rounding error.
                let (bx, by) = l.to_frame(tx, ty);
                let tol = 1e-9 * (sw.max(sh) as f64);
                prop_assert!((bx - x).abs() <= tol && (by - y).abs() <= tol, "{:?} -> {:?}", (x, y), (bx, by));
            }
        }

        #[test]
        fn extreme_aspect_ratios(s in 1u32..=8192, d in 1u32..=1024) {
            for (sw, sh) in [(s, 1), (1, s), (8192, s), (s, 8192)] {
                let l = Letterbox::new(sw, sh, d, d, true);
                prop_assert!(l.left + l.new_w <= d && l.top + l.new_h <= d);
                let frame = [0.0, 0.0, sw as f64, sh as f64];
                let t = l.box_to_tensor(frame);
                // The whole frame is the resized image, exactly where the padding ends.
                let want = [l.left as f64, l.top as f64, (l.left + l.new_w) as f64, (l.top + l.new_h) as f64];
                for k in 0..4 {
                    prop_assert!((t[k] - want[k]).abs() <= 1e-9 * d as f64, "{t:?} vs {want:?}");
                }
                let b = l.box_to_frame(t);
                for k in 0..4 {
                    prop_assert!((b[k] - frame[k]).abs() <= 1e-9 * s.max(sw) as f64, "{b:?}");
                }
            }
        }
    }
}
