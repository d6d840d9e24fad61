//! Small images for multimodal items, drawn by code and encoded as PNG here: a palette
//! canvas with rectangles, circles, triangles and a 3×5 pixel font, written as an indexed
//! PNG in stored (uncompressed) deflate blocks. No image crate: the images are tiny and
//! exactness (the same bytes every time) matters more than size.

/// An RGB colour.
pub type Rgb = [u8; 3];

/// Named colours the suites use; the name is what an answer must say.
pub const COLOURS: [(&str, Rgb); 8] = [
    ("white", [255, 255, 255]),
    ("black", [0, 0, 0]),
    ("red", [220, 30, 30]),
    ("green", [30, 160, 60]),
    ("blue", [30, 70, 220]),
    ("yellow", [240, 210, 20]),
    ("orange", [245, 140, 20]),
    ("purple", [140, 50, 170]),
];

/// The RGB of a named colour (black when unknown).
pub fn colour(name: &str) -> Rgb {
    COLOURS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or([0, 0, 0], |(_, c)| *c)
}

/// A canvas of palette indices into [`COLOURS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

fn index_of(name: &str) -> u8 {
    COLOURS.iter().position(|(n, _)| *n == name).unwrap_or(1) as u8
}

/// 3×5 glyphs, rows top to bottom, 3 bits each (MSB left).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [7, 4, 5, 5, 7],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [7, 5, 5, 5, 7],
        'P' => [7, 5, 7, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'S' => [7, 4, 7, 1, 7],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        ' ' => [0, 0, 0, 0, 0],
        _ => return None,
    })
}

impl Canvas {
    /// A canvas filled with `background`.
    pub fn new(width: usize, height: usize, background: &str) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![index_of(background); width * height],
        }
    }

    fn set(&mut self, x: i64, y: i64, colour: u8) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, colour: &str) -> &mut Canvas {
        let c = index_of(colour);
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
        self
    }

    /// A filled circle.
    pub fn circle(&mut self, cx: i64, cy: i64, r: i64, colour: &str) -> &mut Canvas {
        let c = index_of(colour);
        for yy in cy - r..=cy + r {
            for xx in cx - r..=cx + r {
                if (xx - cx).pow(2) + (yy - cy).pow(2) <= r * r {
                    self.set(xx, yy, c);
                }
            }
        }
        self
    }

    /// A filled triangle pointing up, with its base at `y + h`.
    pub fn triangle(&mut self, x: i64, y: i64, w: i64, h: i64, colour: &str) -> &mut Canvas {
        let c = index_of(colour);
        for row in 0..h {
            let half = (w * (row + 1)) / (2 * h);
            let mid = x + w / 2;
            for xx in mid - half..=mid + half {
                self.set(xx, y + row, c);
            }
        }
        self
    }

    /// Text in the 3×5 font, each font pixel `scale` pixels wide.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, colour: &str) -> &mut Canvas {
        let c = index_of(colour);
        let mut pen = x;
        for ch in text.chars() {
            if let Some(rows) = glyph(ch) {
                for (ry, bits) in rows.iter().enumerate() {
                    for rx in 0..3 {
                        if bits & (4 >> rx) != 0 {
                            for dy in 0..scale {
                                for dx in 0..scale {
                                    self.set(pen + rx * scale + dx, y + ry as i64 * scale + dy, c);
                                }
                            }
                        }
                    }
                }
            }
            pen += 4 * scale;
        }
        self
    }

    /// The canvas as an indexed-colour PNG.
    pub fn to_png(&self) -> Vec<u8> {
        let mut raw = Vec::with_capacity((self.width + 1) * self.height);
        for row in self.pixels.chunks(self.width.max(1)) {
            raw.push(0); // filter: none
            raw.extend_from_slice(row);
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&(self.width as u32).to_be_bytes());
        ihdr.extend_from_slice(&(self.height as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // 8-bit, indexed, deflate, no filter set, no interlace
        chunk(&mut png, b"IHDR", &ihdr);
        let palette: Vec<u8> = COLOURS.iter().flat_map(|(_, c)| *c).collect();
        chunk(&mut png, b"PLTE", &palette);
        chunk(&mut png, b"IDAT", &zlib_stored(&raw));
        chunk(&mut png, b"IEND", &[]);
        png
    }

    /// The PNG as a `data:image/png;base64,…` URL.
    pub fn to_data_url(&self) -> String {
        janus_core::data_url_encode("image/png", &self.to_png())
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// zlib around stored deflate blocks (at most 65,535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(65_535).collect()
    };
    let last = blocks.len() - 1;
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i == last));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn png_is_well_formed() {
        let mut canvas = Canvas::new(4, 2, "white");
        canvas.rect(0, 0, 2, 2, "red");
        let png = canvas.to_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // The CRC of IEND is fixed by the PNG spec.
        assert_eq!(&png[png.len() - 8..], b"IEND\xaeB`\x82");
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert!(canvas
            .to_data_url()
            .starts_with("data:image/png;base64,iVBORw0KGgo"));
    }
}
