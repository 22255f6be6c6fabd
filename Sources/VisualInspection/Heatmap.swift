// Heat-map overlays: the image with the anomaly map in a colour scale, the mask outlined
// and the boxes drawn, for a person to look at.
import Anomaly

/// Renders heat-map overlays of inspection results.
public enum Heatmap {
    /// The overlay of a result on its image, as 8-bit RGB at the image's size.
    ///
    /// The anomaly map is shown inside the inspected region in a blue-green-yellow-red
    /// scale from 0.6 to 1.4 times the threshold (yellow at the threshold), transparent
    /// below that range and more opaque towards the threshold, so that normal surface stays
    /// readable; mask borders are white and boxes red. A result without a map (classifier-only model) gives the plain image with
    /// a coloured frame (green OK, red defect).
    ///
    /// Very large images are drawn at most `maximumSide` pixels on their longer side.
    public static func overlay(_ image: Image, result: InspectionResult, maximumSide: Int = 2048) -> Image {
        overlay(image, result: result, maximumSide: maximumSide, reference: false)
    }

    /// The overlay computed pixel by pixel in floating point, the reference the fast
    /// colouring (a table and integer blending) is tested against (exposed for tests).
    public static func overlayReference(_ image: Image, result: InspectionResult, maximumSide: Int = 2048) -> Image {
        overlay(image, result: result, maximumSide: maximumSide, reference: true)
    }

    /// Entries of ``blendTable`` over the colour scale's [0, 1].
    static let tableSize = 2048

    /// The colour premultiplied by the blending weight w (alpha x 256, at most 179) and
    /// 256 - w, at `tableSize` points of the scale, packed `r w | g w << 16 | b w << 32 |
    /// (256 - w) << 48` (16 KB: stays in the L1 cache). A blended sample is then
    /// `(sample (256 - w) + c w + 128) >> 8`; entry 0 leaves the pixel as it is.
    static let blendTable: [UInt64] = (0..<tableSize).map { i in
        let t = Float(i) / Float(tableSize - 1)
        let (r, g, b) = colour(t)
        let alpha = min(max(2 * t, 0), 1) * 0.7
        let w = UInt64((alpha * 256).rounded())
        return UInt64(r) * w | UInt64(g) * w << 16 | UInt64(b) * w << 32 | (256 - w) << 48
    }

    private static func overlay(_ image: Image, result: InspectionResult, maximumSide: Int, reference: Bool) -> Image {
        var base = image.to8Bit().rgb()
        var region = result.region
        var boxes = result.boxes
        let longer = max(base.width, base.height)
        if longer > maximumSide {
            let scale = Double(maximumSide) / Double(longer)
            func s(_ v: Int) -> Int { Int((Double(v) * scale).rounded()) }
            base = base.resized(width: max(1, s(base.width)), height: max(1, s(base.height)))
            region = RegionOfInterest(x: s(region.x), y: s(region.y), width: max(1, s(region.width)), height: max(1, s(region.height)))
            boxes = boxes.map { DefectRegion(x: s($0.x), y: s($0.y), width: max(1, s($0.width)), height: max(1, s($0.height)),
                                             area: $0.area, score: $0.score) }
        }
        let width = base.width, height = base.height
        var pixels = base.pixels
        // Keep the region inside the (possibly rescaled) image.
        let rx0 = min(max(region.x, 0), width), ry0 = min(max(region.y, 0), height)
        let rw = min(region.width, width - rx0), rh = min(region.height, height - ry0)

        if let map = result.anomalyMap, let threshold = result.threshold, rw > 0, rh > 0 {
            var inside = [Bool](repeating: false, count: rw * rh)
            // The colour scale's position t = (ratio - 0.6) / 0.8 as a linear function of
            // the raw value where the calibration's relative value is one (scaled scores,
            // positive thresholds): the fast path's per-pixel work is then a multiply-add,
            // a table look-up and integer blending.
            let linear: (a: Float, b: Float)?
            if let scale = result.calibration?.scale {
                let k = 0.2 / Swift.max(scale, 1e-12)
                linear = (k / 0.8, (1 - k * threshold - 0.6) / 0.8)
            } else if threshold > 0 {
                linear = (1 / (threshold * 0.8), -0.6 / 0.8)
            } else {
                linear = nil
            }
            if !reference, let (a, b) = linear {
                // One pass down the region, a row of the map resampled at a time: table
                // positions and mask flags eight pixels at a time, then the blending of
                // the pixels the scale reaches.
                let top = Float(tableSize - 1)
                var positions = [UInt32](repeating: 0, count: rw)
                inside.withUnsafeMutableBufferPointer { inside in
                    blendTable.withUnsafeBufferPointer { table in
                        pixels.withUnsafeMutableBufferPointer { px in
                            positions.withUnsafeMutableBufferPointer { positions in
                                let table = table.baseAddress!, position = positions.baseAddress!
                                let av = SIMD8<Float>(repeating: a), bv = SIMD8<Float>(repeating: b)
                                map.forEachResizedRow(width: rw, height: rh) { y, values in
                                    let value = UnsafeRawPointer(values.baseAddress!)
                                    var reached = SIMDMask<SIMD8<Int32>>(repeating: false)
                                    var x = 0
                                    while x &+ 8 <= rw {
                                        // t = a raw + b on the scale, 0 where not above 0 (or
                                        // NaN): entry 0 leaves the pixel unchanged. The table
                                        // position round(t top) is read from the mantissa of
                                        // t top + 2^23 (conversion instructions are not
                                        // reachable from Swift's SIMD types).
                                        let raw = value.loadUnaligned(fromByteOffset: x &* 4, as: SIMD8<Float>.self)
                                        var t = raw * av + bv
                                        t.replace(with: 0, where: .!(t .> 0))
                                        t.replace(with: 1, where: t .> 1)
                                        let shifted = t * top + 8_388_608
                                        let index = unsafeBitCast(shifted, to: SIMD8<UInt32>.self) & 0x7f_ffff
                                        UnsafeMutableRawPointer(position + x).storeBytes(of: index, as: SIMD8<UInt32>.self)
                                        reached .|= unsafeBitCast(index, to: SIMD8<Int32>.self) .> 0
                                        x &+= 8
                                    }
                                    var tail = false
                                    while x < rw {
                                        let t = a * values[x] + b
                                        position[x] = t > 0 ? UInt32((Swift.min(t, 1) * top).rounded()) : 0
                                        tail = tail || position[x] > 0
                                        x &+= 1
                                    }
                                    let flags = inside.baseAddress! + y &* rw
                                    guard any(reached) || tail else {
                                        for x in 0..<rw { flags[x] = values[x] > threshold }
                                        return
                                    }
                                    var sample = px.baseAddress! + ((ry0 &+ y) &* width &+ rx0) &* 3
                                    for x in 0..<rw {
                                        flags[x] = values[x] > threshold
                                        let p = Int(position[x])
                                        if p != 0 {
                                            let entry = table[p], keep = UInt32(truncatingIfNeeded: entry >> 48)
                                            sample[0] = UInt8(truncatingIfNeeded: (UInt32(sample[0]) &* keep &+ UInt32(truncatingIfNeeded: entry & 0xffff) &+ 128) >> 8)
                                            sample[1] = UInt8(truncatingIfNeeded: (UInt32(sample[1]) &* keep &+ UInt32(truncatingIfNeeded: (entry >> 16) & 0xffff) &+ 128) >> 8)
                                            sample[2] = UInt8(truncatingIfNeeded: (UInt32(sample[2]) &* keep &+ UInt32(truncatingIfNeeded: (entry >> 32) & 0xffff) &+ 128) >> 8)
                                        }
                                        sample += 3
                                    }
                                }
                            }
                        }
                    }
                }
            } else {
                let resized = map.resized(width: rw, height: rh)
                for y in 0..<rh {
                    for x in 0..<rw {
                        let raw = resized.values[y * rw + x]
                        // The scale spans 0.6 to 1.4 times the threshold (yellow at the
                        // threshold; for an ensemble's normalised scores, two good-part
                        // spreads either side): the values of normal surface sit at about
                        // half of it and would otherwise tint the whole picture.
                        let ratio = result.calibration?.relative(raw)
                            ?? (threshold > 0 ? max(raw, 0) / threshold : (raw > 0 ? 2 : 0))
                        inside[y * rw + x] = raw > threshold
                        // Transparent below 0.6 x threshold, 70 % opaque from the threshold up.
                        let t = (ratio - 0.6) / 0.8
                        if !(t > 0) { continue }
                        let index = ((ry0 + y) * width + rx0 + x) * 3
                        let alpha = min(max((ratio - 0.6) / 0.4, 0), 1) * 0.7
                        let (r, g, b) = colour(t)
                        pixels[index] = blend(pixels[index], r, alpha)
                        pixels[index + 1] = blend(pixels[index + 1], g, alpha)
                        pixels[index + 2] = blend(pixels[index + 2], b, alpha)
                    }
                }
            }
            // Mask outline: mask pixels with a 4-neighbour outside the mask. Inside the
            // region's border, 16 pixels at a time are skipped when none of them is one.
            inside.withUnsafeBufferPointer { inside in
                pixels.withUnsafeMutableBufferPointer { px in
                    let flags = UnsafeRawPointer(inside.baseAddress!)
                    func mark(_ x: Int, _ y: Int) {
                        let row = y &* rw
                        guard inside[row &+ x] else { return }
                        let edge = x == 0 || y == 0 || x == rw &- 1 || y == rh &- 1 || !inside[row &+ x &- 1]
                            || !inside[row &+ x &+ 1] || !inside[row &- rw &+ x] || !inside[row &+ rw &+ x]
                        if edge {
                            let index = ((ry0 &+ y) &* width &+ rx0 &+ x) &* 3
                            px[index] = 255; px[index &+ 1] = 255; px[index &+ 2] = 255
                        }
                    }
                    for y in 0..<rh {
                        var x = 0
                        if !reference && y > 0 && y < rh &- 1 {
                            mark(0, y)
                            x = 1
                            let row = y &* rw
                            while x &+ 16 <= rw &- 1 {
                                let at = row &+ x
                                let centre = flags.loadUnaligned(fromByteOffset: at, as: SIMD16<UInt8>.self)
                                let around = flags.loadUnaligned(fromByteOffset: at &- 1, as: SIMD16<UInt8>.self)
                                    & flags.loadUnaligned(fromByteOffset: at &+ 1, as: SIMD16<UInt8>.self)
                                    & flags.loadUnaligned(fromByteOffset: at &- rw, as: SIMD16<UInt8>.self)
                                    & flags.loadUnaligned(fromByteOffset: at &+ rw, as: SIMD16<UInt8>.self)
                                if centre & ~around != SIMD16<UInt8>(repeating: 0) {
                                    for k in x..<(x &+ 16) { mark(k, y) }
                                }
                                x &+= 16
                            }
                        }
                        while x < rw {
                            mark(x, y)
                            x &+= 1
                        }
                    }
                }
            }
            let thickness = max(1, min(width, height) / 256 + 1)
            let draw = reference ? rectangleByDefinition : rectangle
            for box in boxes {
                draw(&pixels, width, height, box.x, box.y, box.width, box.height, (230, 20, 20), thickness)
            }
        } else {
            let frame: (UInt8, UInt8, UInt8) = result.verdict == .ok ? (20, 200, 60) : (230, 20, 20)
            let draw = reference ? rectangleByDefinition : rectangle
            draw(&pixels, width, height, 0, 0, width, height, frame, max(2, min(width, height) / 64))
        }
        return Image(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// Blue (0) - cyan - green - yellow (0.5) - red (1): yellow sits at the threshold.
    static let stops: [(Float, Float, Float, Float)] = [
        (0.0, 0, 0, 255), (0.2, 0, 200, 255), (0.35, 0, 220, 60), (0.5, 255, 230, 0), (0.7, 255, 90, 0), (1.0, 200, 0, 0),
    ]

    static func colour(_ n: Float) -> (UInt8, UInt8, UInt8) {
        let stops = Heatmap.stops
        let t = min(max(n, 0), 1)
        var i = 0
        while i < stops.count - 2 && t > stops[i + 1].0 { i += 1 }
        let (t0, r0, g0, b0) = stops[i], (t1, r1, g1, b1) = stops[i + 1]
        let f = (t - t0) / (t1 - t0)
        return (UInt8(r0 + (r1 - r0) * f), UInt8(g0 + (g1 - g0) * f), UInt8(b0 + (b1 - b0) * f))
    }

    @inline(__always) static func blend(_ a: UInt8, _ b: UInt8, _ alpha: Float) -> UInt8 {
        UInt8(min(max(Float(a) * (1 - alpha) + Float(b) * alpha, 0), 255))
    }

    @inline(__always) static func set(_ pixels: inout [UInt8], _ width: Int, _ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        let index = (y * width + x) * 3
        pixels[index] = c.0; pixels[index + 1] = c.1; pixels[index + 2] = c.2
    }

    /// A rectangle outline `thickness` pixels wide, drawn inwards, clipped to the image:
    /// four strips, so that the cost follows the outline, not the area.
    static func rectangle(_ pixels: inout [UInt8], width: Int, height: Int, _ x: Int, _ y: Int, _ w: Int, _ h: Int,
                          colour: (UInt8, UInt8, UInt8), thickness: Int) {
        let t = max(1, min(thickness, (w + 1) / 2, (h + 1) / 2))
        guard w > 0, h > 0 else { return }
        func fill(_ fx0: Int, _ fy0: Int, _ fx1: Int, _ fy1: Int) {
            let x0 = max(fx0, 0), y0 = max(fy0, 0), x1 = min(fx1, width), y1 = min(fy1, height)
            guard x1 > x0, y1 > y0 else { return }
            for yy in y0..<y1 {
                for xx in x0..<x1 { set(&pixels, width, xx, yy, colour) }
            }
        }
        fill(x, y, x + w, y + t)                 // top
        fill(x, y + h - t, x + w, y + h)         // bottom
        fill(x, y + t, x + t, y + h - t)         // left
        fill(x + w - t, y + t, x + w, y + h - t) // right
    }

    /// ``rectangle(_:width:height:_:_:_:_:colour:thickness:)`` pixel by pixel, by its
    /// definition (used by the reference overlay, against which the tests compare).
    static func rectangleByDefinition(_ pixels: inout [UInt8], width: Int, height: Int, _ x: Int, _ y: Int, _ w: Int, _ h: Int,
                                      colour: (UInt8, UInt8, UInt8), thickness: Int) {
        let x0 = max(x, 0), y0 = max(y, 0), x1 = min(x + w, width), y1 = min(y + h, height)
        guard x1 > x0, y1 > y0 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 {
                let border = xx - x < thickness || x + w - 1 - xx < thickness || yy - y < thickness || y + h - 1 - yy < thickness
                if border { set(&pixels, width, xx, yy, colour) }
            }
        }
    }

    /// Where the heat map of an input path goes, relative to the heat-map folder: the
    /// input's own folders as folders and its name, so that no two inputs share a heat map
    /// (`line/a/part.png` -> `line/a/part.png`, `line/b/part.jpg` -> `line/b/part.jpg.png`).
    /// A name ending in `.png` is kept unless what comes before ends like an image name
    /// too (`x.jpg.png` -> `x.jpg.png.png`, so that it cannot meet `x.jpg`'s); others get
    /// `.png` appended. Folders: `..` becomes `_up`, a leading `/` becomes `_root`, `.` is
    /// left out, and a folder name that starts with `_` gets one more, so that a real folder
    /// called `_up` cannot meet them. (Inputs are images by name when a folder is walked;
    /// a file given explicitly without an image extension, say `x`, would share
    /// `x.png`'s heat map.)
    public static func fileName(for path: String) -> String {
        var components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let name = components.popLast() ?? "image"
        var out: [String] = path.hasPrefix("/") ? ["_root"] : []
        for component in components where component != "." {
            out.append(component == ".." ? "_up" : component.hasPrefix("_") ? "_" + component : component)
        }
        let lower = name.lowercased()
        let stem = String(lower.dropLast(4))
        let keep = lower.hasSuffix(".png") && !stem.isEmpty && !stem.hasSuffix(".png") && !stem.hasSuffix(".jpg")
            && !stem.hasSuffix(".jpeg") && name != "." && name != ".."
        out.append(keep ? name : (name == ".." ? "_up" : name) + ".png")
        return out.joined(separator: "/")
    }
}
