// Procedural surface textures with synthetic defects: many labelled base classes for
// episodic training of the few-shot head, made by the project itself so that no data set
// has to be copied or downloaded. A class is a texture family x a defect kind x a variant
// (polarity, scale and contrast ranges); every image of a class varies placement,
// orientation, size and contrast within the class's ranges.
import ImageIO
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Seeded generator of synthetic defect classes (grey images).
///
/// ```swift
/// let generator = SyntheticDefects(seed: 7)
/// let classes = generator.classes(54)          // 6 textures x 9 defects
/// let image = generator.image(of: classes[3], index: 0, size: 200)
/// ```
public struct SyntheticDefects: Sendable {
    /// Background texture families.
    public enum Texture: String, CaseIterable, Sendable {
        /// Smooth blotches (fractal value noise).
        case mottled
        /// Streaks along one direction (stretched noise), like rolled or ground metal.
        case brushed
        /// Fine grain (lightly blurred white noise over slow shading).
        case grainy
        /// Cells (distance to the nearest of scattered points), like sintered or cast surfaces.
        case cellular
        /// Two crossed gratings with noise, like fabric or a machined pattern.
        case woven
        /// An illumination gradient with fine noise, like a polished surface.
        case polished
    }

    /// Defect kinds painted onto a texture.
    public enum Defect: String, CaseIterable, Sendable {
        /// No defect: the texture alone.
        case none
        /// A thin straight or slightly curved line.
        case scratch
        /// A jagged dark path with branches.
        case crack
        /// One to three soft ellipses.
        case blob
        /// Many small dots.
        case spots
        /// A large faint irregular patch.
        case stain
        /// Short thin streaks, aligned and clustered.
        case inclusion
        /// Many small irregular flakes in one region.
        case flakes
        /// Large dark irregular regions (thresholded low-frequency noise).
        case patches
    }

    /// One generated class.
    public struct ClassSpec: Sendable, Equatable {
        public var texture: Texture
        public var defect: Defect
        /// 0 for the first texture x defect combination, 1 for its second variant, ...
        public var variant: Int
        /// The class index, which seeds the class's parameters.
        public var index: Int
        /// e.g. `brushed-scratch-0`.
        public var name: String { "\(texture.rawValue)-\(defect.rawValue)-\(variant)" }
    }

    /// Seed of every class's parameters and every image.
    public var seed: UInt64

    public init(seed: UInt64 = 0) { self.seed = seed }

    /// The first `count` classes: all texture x defect combinations in turn, then their
    /// further variants.
    public func classes(_ count: Int) -> [ClassSpec] {
        let textures = Texture.allCases, defects = Defect.allCases
        let combinations = textures.count * defects.count
        return (0..<count).map { i in
            let combination = i % combinations
            return ClassSpec(texture: textures[combination % textures.count], defect: defects[combination / textures.count],
                             variant: i / combinations, index: i)
        }
    }

    /// The `index`-th image of a class, `size` x `size`, one grey channel.
    public func image(of spec: ClassSpec, index: Int, size: Int = 200) -> Image {
        // Class parameters come from the class's own generator, image parameters from one
        // seeded by class and image, so an image does not depend on which others were made.
        var classRNG = Xoshiro256(seed: mix(seed, UInt64(spec.index), 0x5EED))
        let style = ClassStyle(using: &classRNG)
        var rng = Xoshiro256(seed: mix(seed, UInt64(spec.index), UInt64(index) &+ 1))
        var field = texture(spec.texture, style: style, size: size, using: &rng)
        var mask = [Float](repeating: 0, count: size * size)
        paint(spec.defect, style: style, into: &mask, size: size, using: &rng)
        let amplitude = style.defectContrast * rng.uniform(0.7, 1.3)
        for i in field.indices { field[i] += style.polarity * amplitude * mask[i] }
        // Global contrast and brightness vary per image, as lighting does on a line.
        let mean = field.reduce(0, +) / Float(field.count)
        let contrast = style.contrast * rng.uniform(0.8, 1.25), brightness = 0.5 + rng.uniform(-0.12, 0.12)
        let pixels = field.map { v -> UInt8 in
            let value = brightness + (v - mean) * contrast + 0.02 * rng.nextStandardNormal()
            return UInt8(Swift.max(0, Swift.min(255, (value * 255).rounded())))
        }
        return Image(width: size, height: size, channels: 1, pixels: pixels)
    }

    // MARK: - Class style

    /// What stays fixed within a class (each image still varies around it).
    struct ClassStyle {
        var scale: Float          // texture feature size, as a fraction of the image
        var orientation: Float    // preferred angle (radians); images vary around it
        var orientationSpread: Float
        var polarity: Float       // +1 bright defects, -1 dark
        var defectContrast: Float
        var contrast: Float
        var defectSize: Float     // multiplies the defect's size range

        init(using rng: inout Xoshiro256) {
            scale = rng.uniform(0.04, 0.2)
            orientation = rng.uniform(0, .pi)
            orientationSpread = rng.nextUnitFloat() < 0.5 ? 0.2 : .pi
            polarity = rng.nextUnitFloat() < 0.7 ? -1 : 1
            defectContrast = rng.uniform(0.25, 0.6)
            contrast = rng.uniform(0.6, 1.4)
            defectSize = rng.uniform(0.6, 1.5)
        }
    }

    // MARK: - Textures (values around 0.5, roughly within [0, 1])

    func texture(_ kind: Texture, style: ClassStyle, size: Int, using rng: inout Xoshiro256) -> [Float] {
        let n = Float(size)
        let angle = style.orientation + rng.uniform(-style.orientationSpread, style.orientationSpread)
        let scale = style.scale * rng.uniform(0.8, 1.25)
        switch kind {
        case .mottled:
            let noise = ValueNoise(cells: Int(1 / scale) + 2, using: &rng)
            return grid(size) { x, y in noise.fractal(x / n, y / n, octaves: 3) }
        case .brushed:
            let noise = ValueNoise(cells: Int(1 / scale) * 6 + 4, using: &rng)
            let (c, s) = (cos(angle), sin(angle))
            return grid(size) { x, y in
                let u = (c * x + s * y) / n, v = (-s * x + c * y) / n
                return noise.fractal(0.5 + u * 0.12, 0.5 + v, octaves: 2)
            }
        case .grainy:
            let shading = ValueNoise(cells: 3, using: &rng)
            var white = (0..<(size * size)).map { _ in rng.nextUnitFloat() }
            white = boxBlur(white, size: size, radius: Swift.max(1, Int(scale * 10)))
            return grid(size) { x, y in 0.3 * shading.sample(x / n, y / n) + white[Int(y) * size + Int(x)] }
        case .cellular:
            let count = Int(1 / (scale * scale) / 4) + 4
            let points = (0..<count).map { _ in (rng.uniform(0, n), rng.uniform(0, n)) }
            let cell = n * scale * 1.2
            return grid(size) { x, y in
                var best = Float.infinity
                for p in points { best = Swift.min(best, (p.0 - x) * (p.0 - x) + (p.1 - y) * (p.1 - y)) }
                return Swift.min(1, best.squareRoot() / cell)
            }
        case .woven:
            let period = n * scale * 0.5 + 3
            let noise = ValueNoise(cells: 8, using: &rng)
            let (c, s) = (cos(angle), sin(angle))
            return grid(size) { x, y in
                let u = c * x + s * y, v = -s * x + c * y
                return 0.5 + 0.25 * sin(2 * .pi * u / period) * sin(2 * .pi * v / period) + 0.3 * (noise.sample(x / n, y / n) - 0.5)
            }
        case .polished:
            let (c, s) = (cos(angle), sin(angle))
            let fine = (0..<(size * size)).map { _ in rng.nextUnitFloat() }
            return grid(size) { x, y in 0.3 + 0.4 * ((c * x + s * y) / n) + 0.15 * fine[Int(y) * size + Int(x)] }
        }
    }

    // MARK: - Defects (a mask in [0, 1] that the class's polarity and contrast apply)

    func paint(_ defect: Defect, style: ClassStyle, into mask: inout [Float], size: Int, using rng: inout Xoshiro256) {
        let n = Float(size), k = style.defectSize
        let angle = style.orientation + rng.uniform(-style.orientationSpread, style.orientationSpread)
        switch defect {
        case .none:
            return
        case .scratch:
            let length = n * rng.uniform(0.3, 0.9)
            let (cx, cy) = (rng.uniform(0.25, 0.75) * n, rng.uniform(0.25, 0.75) * n)
            let bend = rng.uniform(-0.15, 0.15) * length
            let width = rng.uniform(0.8, 2.2) * k
            var previous: (Float, Float)? = nil
            for step in 0...16 {
                let t = Float(step) / 16 - 0.5
                let point = (cx + cos(angle) * t * length - sin(angle) * bend * (1 - 4 * t * t),
                             cy + sin(angle) * t * length + cos(angle) * bend * (1 - 4 * t * t))
                if let previous { stroke(&mask, size: size, from: previous, to: point, width: width) }
                previous = point
            }
        case .crack:
            for branch in 0..<(1 + Int(rng.next() % 3)) {
                var point = (rng.uniform(0.2, 0.8) * n, rng.uniform(0.2, 0.8) * n)
                var heading = angle + (branch == 0 ? 0 : rng.uniform(-1.2, 1.2))
                let steps = Int(rng.uniform(20, 60) * k)
                for _ in 0..<steps {
                    heading += rng.uniform(-0.6, 0.6)
                    let next = (point.0 + cos(heading) * 3, point.1 + sin(heading) * 3)
                    stroke(&mask, size: size, from: point, to: next, width: rng.uniform(0.7, 1.8))
                    point = next
                }
            }
        case .blob:
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let r = n * rng.uniform(0.04, 0.14) * k
                ellipse(&mask, size: size, center: (rng.uniform(0.15, 0.85) * n, rng.uniform(0.15, 0.85) * n),
                        radii: (r, r * rng.uniform(0.4, 1)), angle: rng.uniform(0, .pi), softness: r * 0.3)
            }
        case .spots:
            for _ in 0..<Int(rng.uniform(15, 60)) {
                let r = rng.uniform(1, 3.5) * k
                ellipse(&mask, size: size, center: (rng.uniform(0, n), rng.uniform(0, n)), radii: (r, r), angle: 0, softness: 0.8)
            }
        case .stain:
            let r = n * rng.uniform(0.18, 0.35)
            let shape = ValueNoise(cells: 4, using: &rng)
            let (cx, cy) = (rng.uniform(0.3, 0.7) * n, rng.uniform(0.3, 0.7) * n)
            for y in 0..<size {
                for x in 0..<size {
                    let d = ((Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)).squareRoot()
                    let edge = r * (0.7 + 0.6 * shape.sample(Float(x) / n, Float(y) / n))
                    let v = 0.5 * Swift.max(0, 1 - d / edge)
                    mask[y * size + x] = Swift.max(mask[y * size + x], Swift.min(1, v * 2) * 0.5)
                }
            }
        case .inclusion:
            let (cx, cy) = (rng.uniform(0.2, 0.8) * n, rng.uniform(0.2, 0.8) * n)
            let spread = n * rng.uniform(0.1, 0.3)
            for _ in 0..<Int(rng.uniform(3, 9)) {
                let length = n * rng.uniform(0.05, 0.2) * k
                let a = angle + rng.uniform(-0.1, 0.1)
                let px = cx + rng.uniform(-spread, spread), py = cy + rng.uniform(-spread, spread) * 0.4
                stroke(&mask, size: size, from: (px, py), to: (px + cos(a) * length, py + sin(a) * length), width: rng.uniform(0.8, 2))
            }
        case .flakes:
            let (cx, cy) = (rng.uniform(0.25, 0.75) * n, rng.uniform(0.25, 0.75) * n)
            let region = n * rng.uniform(0.15, 0.35)
            for _ in 0..<Int(rng.uniform(20, 50)) {
                let r = rng.uniform(1.5, 5) * k
                ellipse(&mask, size: size, center: (cx + rng.uniform(-region, region), cy + rng.uniform(-region, region)),
                        radii: (r, r * rng.uniform(0.3, 1)), angle: rng.uniform(0, .pi), softness: 0.8)
            }
        case .patches:
            let noise = ValueNoise(cells: Int(rng.uniform(3, 7)), using: &rng)
            let level = rng.uniform(0.55, 0.7)
            for y in 0..<size {
                for x in 0..<size {
                    let v = noise.fractal(Float(x) / n, Float(y) / n, octaves: 2)
                    mask[y * size + x] = Swift.max(mask[y * size + x], Swift.min(1, Swift.max(0, (v - level) * 8)))
                }
            }
        }
    }
}

// MARK: - Drawing helpers

/// A `size` x `size` field from a function of pixel coordinates.
private func grid(_ size: Int, _ value: (Float, Float) -> Float) -> [Float] {
    var out = [Float](repeating: 0, count: size * size)
    for y in 0..<size { for x in 0..<size { out[y * size + x] = value(Float(x), Float(y)) } }
    return out
}

/// Max-blends a line segment of the given half-width (soft by one pixel) into the mask.
private func stroke(_ mask: inout [Float], size: Int, from a: (Float, Float), to b: (Float, Float), width: Float) {
    let reach = width + 1
    let x0 = Swift.max(0, Int(Swift.min(a.0, b.0) - reach)), x1 = Swift.min(size - 1, Int(Swift.max(a.0, b.0) + reach))
    let y0 = Swift.max(0, Int(Swift.min(a.1, b.1) - reach)), y1 = Swift.min(size - 1, Int(Swift.max(a.1, b.1) + reach))
    guard x0 <= x1, y0 <= y1 else { return }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1)
    let length2 = Swift.max(dx * dx + dy * dy, 1e-6)
    for y in y0...y1 {
        for x in x0...x1 {
            let (px, py) = (Float(x) - a.0, Float(y) - a.1)
            let t = Swift.max(0, Swift.min(1, (px * dx + py * dy) / length2))
            let (ex, ey) = (px - t * dx, py - t * dy)
            let v = Swift.max(0, Swift.min(1, width + 0.5 - (ex * ex + ey * ey).squareRoot()))
            mask[y * size + x] = Swift.max(mask[y * size + x], v)
        }
    }
}

/// Max-blends a rotated ellipse with a soft edge `softness` pixels wide into the mask.
private func ellipse(_ mask: inout [Float], size: Int, center: (Float, Float), radii: (Float, Float), angle: Float, softness: Float) {
    let reach = Swift.max(radii.0, radii.1) + softness + 1
    let x0 = Swift.max(0, Int(center.0 - reach)), x1 = Swift.min(size - 1, Int(center.0 + reach))
    let y0 = Swift.max(0, Int(center.1 - reach)), y1 = Swift.min(size - 1, Int(center.1 + reach))
    guard x0 <= x1, y0 <= y1 else { return }
    let (c, s) = (cos(angle), sin(angle))
    let meanRadius = (radii.0 + radii.1) / 2
    for y in y0...y1 {
        for x in x0...x1 {
            let (px, py) = (Float(x) - center.0, Float(y) - center.1)
            let u = (c * px + s * py) / radii.0, v = (-s * px + c * py) / radii.1
            let outside = ((u * u + v * v).squareRoot() - 1) * meanRadius  // ~ pixels beyond the edge
            let value = Swift.max(0, Swift.min(1, 0.5 - outside / Swift.max(softness, 0.5)))
            mask[y * size + x] = Swift.max(mask[y * size + x], value)
        }
    }
}

/// A separable box blur of a `size` x `size` field (edges clamped).
private func boxBlur(_ field: [Float], size: Int, radius: Int) -> [Float] {
    var horizontal = field, out = field
    let width = Float(2 * radius + 1)
    for y in 0..<size {
        for x in 0..<size {
            var s: Float = 0
            for k in -radius...radius { s += field[y * size + Swift.min(size - 1, Swift.max(0, x + k))] }
            horizontal[y * size + x] = s / width
        }
    }
    for y in 0..<size {
        for x in 0..<size {
            var s: Float = 0
            for k in -radius...radius { s += horizontal[Swift.min(size - 1, Swift.max(0, y + k)) * size + x] }
            out[y * size + x] = s / width
        }
    }
    return out
}

/// Smoothly interpolated random values on a periodic lattice over the unit square (the
/// shared ``valueNoise(_:_:lattice:)`` on a table drawn from the seed).
private struct ValueNoise {
    let cells: Int
    let values: [Float]

    init(cells: Int, using rng: inout Xoshiro256) {
        self.cells = Swift.max(cells, 1)
        values = (0..<(self.cells * self.cells)).map { _ in rng.nextUnitFloat() }
    }

    /// The noise at `(u, v)` (any real coordinates; the lattice repeats every unit).
    func sample(_ u: Float, _ v: Float) -> Float {
        valueNoise(u * Float(cells), v * Float(cells)) { i, j in
            values[(((j % cells) + cells) % cells) * cells + ((i % cells) + cells) % cells]
        }
    }

    /// Octaves of the same lattice at doubling frequency and halving weight, in [0, 1].
    func fractal(_ u: Float, _ v: Float, octaves: Int) -> Float {
        var total: Float = 0, weight: Float = 1, norm: Float = 0, frequency: Float = 1
        for octave in 0..<octaves {
            // Offsetting each octave keeps the lattices from lining up at the origin.
            total += weight * sample(u * frequency + Float(octave) * 0.37, v * frequency + Float(octave) * 0.61)
            norm += weight; weight *= 0.5; frequency *= 2
        }
        return total / norm
    }
}

extension Xoshiro256 {
    /// A uniform value in `[low, high)`.
    fileprivate mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * nextUnitFloat() }
}

/// A seed mixed from several parts (SplitMix64 finaliser over a running combination).
private func mix(_ parts: UInt64...) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for p in parts {
        var z = h ^ (p &+ 0x9E37_79B9_7F4A_7C15 &+ (h << 6) &+ (h >> 2))
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        h = z ^ (z >> 31)
    }
    return h
}
