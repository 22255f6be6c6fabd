// Procedural images of industrial-looking surfaces and parts with synthetic defects, drawn
// from a seed. They are the training data of the compact backbone's distillation
// (`vinspect backbone distill`): images the project generates itself, so that the weights
// they produce can be redistributed with the code.
//
// Each image is composed in grey-level planes (`[H * W]` Floats in about 0...1, row-major):
//   1. a background texture (one of ten families, sometimes blended with a second one),
//      drawn in a randomly rotated and scaled frame;
//   2. often a part (disc, washer, plate, nut, pin or screw, a row of parts) with its own
//      texture, rim shading and shadow;
//   3. zero to four defects (scratch, crack, spots, hole, stain, missing piece, pits,
//      foreign patch);
// then mapped to colour through a two-colour palette per layer (or kept grey), and given a
// random gamma, contrast, noise, blur and vignette. Diversity matters more than realism:
// the student only has to see enough kinds of local structure to copy the teacher's
// response to them.
import ImageIO
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A seeded source of procedural inspection-like images: textured surfaces (brushed metal,
/// noise at several scales, weaves and grids, stripes, grains, turned rings, perforated
/// sheet, gradients), machined parts and synthetic defects, in colour and grey.
///
/// Image `i` depends only on `seed`, `i` and `size`, not on which images were drawn before,
/// so batches can be produced in any order or in parallel with identical results.
///
/// ```swift
/// let generator = SyntheticImageGenerator(size: 128, seed: 7)
/// let image = generator.image(at: 0)          // 128 x 128 RGB, 8-bit
/// try image.write(toFile: "sample.png")
/// ```
public struct SyntheticImageGenerator: Sendable, Equatable {
    /// Side of the square images, in pixels.
    public var size: Int
    /// The seed every image is derived from.
    public var seed: UInt64

    /// - Parameters:
    ///   - size: side of the square images (at least 16).
    ///   - seed: the seed of the whole image sequence.
    public init(size: Int, seed: UInt64) {
        precondition(size >= 16, "SyntheticImageGenerator: size \(size) is below 16 pixels")
        self.size = size
        self.seed = seed
    }

    /// Image number `index` of the sequence: `size x size`, 3 channels, 8-bit (grey images
    /// have three equal channels).
    public func image(at index: Int) -> Image {
        // Mix seed and index through SplitMix so that neighbouring indices are unrelated.
        var mixer = SplitMix64(seed: seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD6E8_FEB8_6659_FD93))
        var painter = Painter(size: size, seed: mixer.next())
        return painter.paint()
    }
}

// MARK: - The painter

/// One image being painted; all randomness comes from its own generator.
private struct Painter {
    let size: Int
    var rng: Xoshiro256
    /// Salt for the hashed noise lattices, different for every texture layer.
    var salt: UInt64

    init(size: Int, seed: UInt64) {
        self.size = size
        rng = Xoshiro256(seed: seed)
        salt = seed
    }

    var pixelCount: Int { size * size }

    mutating func uniform(_ range: ClosedRange<Float>) -> Float { Float.random(in: range, using: &rng) }
    mutating func chance(_ p: Float) -> Bool { rng.nextUnitFloat() < p }
    mutating func integer(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &rng) }
    /// A value between `low` and `high` drawn uniformly in log space (for scales and
    /// frequencies, where each octave should be equally likely).
    mutating func logUniform(_ low: Float, _ high: Float) -> Float { low * powf(high / low, rng.nextUnitFloat()) }
    mutating func nextSalt() -> UInt64 { salt = salt &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return salt }

    mutating func paint() -> Image {
        // 1. Background, in a grey level around a random mean.
        var intensity = texture(kind: Texture.allCases.randomElement(using: &rng)!)
        if chance(0.4) {
            let second = texture(kind: Texture.allCases.randomElement(using: &rng)!)
            let w = uniform(0.15...0.5)
            for i in 0..<pixelCount { intensity[i] = intensity[i] * (1 - w) + second[i] * w }
        }
        stretch(&intensity, mean: uniform(0.2...0.8), contrast: logUniform(0.05, 0.45))
        if chance(0.5) { applyLighting(&intensity) }

        // 2. A part on the background.
        var objectMask = [Float](repeating: 0, count: pixelCount)
        var objectIntensity: [Float] = []
        if chance(0.55) {
            objectMask = partMask()
            if chance(0.3) { cutMissingPiece(&objectMask) }
            objectIntensity = texture(kind: Texture.allCases.randomElement(using: &rng)!)
            stretch(&objectIntensity, mean: uniform(0.15...0.85), contrast: logUniform(0.05, 0.4))
            shadeRim(&objectIntensity, mask: objectMask)
            if chance(0.6) { castShadow(&intensity, mask: objectMask) }
        }

        // 3. Defects, drawn on the surface they land on.
        var tint = [Float](repeating: 0, count: pixelCount)  // weight of the stain colour
        for i in 0..<pixelCount where objectMask[i] > 0 {
            intensity[i] = intensity[i] * (1 - objectMask[i]) + objectIntensity[i] * objectMask[i]
        }
        let defects = chance(0.75) ? integer(1...4) : 0
        for _ in 0..<defects { addDefect(&intensity, tint: &tint, objectMask: objectMask) }

        // 4. Colour, then camera effects.
        return finish(intensity, objectMask: objectMask, tint: tint)
    }

    // MARK: Textures

    enum Texture: CaseIterable {
        case noise, brushed, stripes, grid, weave, grains, rings, perforated, gradient, flat
    }

    /// A texture plane with values in about 0...1, drawn in a frame of random angle,
    /// centre and scale. Frequencies are in cycles per image side.
    mutating func texture(kind: Texture) -> [Float] {
        let angle = uniform(0...Float.pi)
        let (c, s) = (cosf(angle), sinf(angle))
        let origin = (uniform(-50...50), uniform(-50...50))
        let n = Float(size)
        // (u, v): rotated coordinates in image sides, plus a random offset so that the
        // lattice is not aligned with the image.
        func frame(_ x: Int, _ y: Int) -> (Float, Float) {
            let px = Float(x) / n - 0.5, py = Float(y) / n - 0.5
            return (c * px - s * py + origin.0, s * px + c * py + origin.1)
        }
        var out = [Float](repeating: 0, count: pixelCount)
        let salt = nextSalt()
        switch kind {
        case .noise:
            let frequency = logUniform(2, 40), octaves = integer(1...5), persistence = uniform(0.35...0.7)
            let anisotropy = chance(0.3) ? logUniform(1, 6) : 1
            let ridged = chance(0.25), blobs = chance(0.25)
            let threshold = uniform(0.4...0.65), softness = logUniform(0.01, 0.15)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    var value = fbm(u * frequency, v * frequency / anisotropy, octaves: octaves, persistence: persistence, salt: salt)
                    if ridged { value = 1 - abs(2 * value - 1) }
                    if blobs { value = smoothstep(threshold - softness, threshold + softness, value) }
                    out[y * size + x] = value
                }
            }
        case .brushed:
            // Fine streaks along one direction: noise stretched by a large factor, over a
            // slow variation of the sheen.
            let across = logUniform(40, 250), along = logUniform(0.5, 4), sheen = uniform(0...0.6)
            let streaks = uniform(0.3...1)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    let fine = fbm(u * along, v * across, octaves: 3, persistence: 0.5, salt: salt)
                    let slow = valueNoise(u * 2, v * 2, salt: salt ^ 0x55)
                    out[y * size + x] = 0.5 + streaks * (fine - 0.5) + sheen * (slow - 0.5)
                }
            }
        case .stripes:
            let frequency = logUniform(2, 60), warp = chance(0.4) ? logUniform(0.02, 0.5) : 0
            let profile = integer(0...2), duty = uniform(-0.6...0.6), edge = logUniform(0.02, 0.4)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    let w = warp > 0 ? warp * (fbm(u * 3, v * 3, octaves: 2, persistence: 0.5, salt: salt) - 0.5) : 0
                    let phase = frequency * v + w
                    let value: Float
                    switch profile {
                    case 0: value = 0.5 + 0.5 * sinf(2 * .pi * phase)
                    case 1: value = smoothstep(duty - edge, duty + edge, sinf(2 * .pi * phase))
                    default: value = phase - floorf(phase)  // sawtooth: stepped or ground surfaces
                    }
                    out[y * size + x] = value
                }
            }
        case .grid:
            let frequency = logUniform(3, 30), width = uniform(0.04...0.3), plus = chance(0.5)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    let du = abs(u * frequency - (u * frequency).rounded()), dv = abs(v * frequency - (v * frequency).rounded())
                    let lineU = 1 - smoothstep(width * 0.5, width, du), lineV = 1 - smoothstep(width * 0.5, width, dv)
                    out[y * size + x] = plus ? 0.5 * (lineU + lineV) : Swift.max(lineU, lineV)
                }
            }
        case .weave:
            // Cells alternate between threads running along u and along v, shaded across
            // each thread like a woven wire mesh or fabric.
            let frequency = logUniform(4, 30), threads = Float(integer(1...4))
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    let cu = floorf(u * frequency), cv = floorf(v * frequency)
                    let parity = Int(cu + cv) & 1
                    let t = parity == 0 ? u * frequency * threads : v * frequency * threads
                    let across = 0.5 + 0.5 * sinf(2 * .pi * t)
                    let along = parity == 0 ? v * frequency - cv : u * frequency - cu
                    out[y * size + x] = across * (0.6 + 0.4 * sinf(.pi * along)) + 0.1 * Float(parity)
                }
            }
        case .grains:
            // Voronoi cells: grains of a casting, scale on steel, cracked coatings.
            let frequency = logUniform(3, 30), mode = integer(0...2), jitter = uniform(0.5...1)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    let (f1, f2, id) = voronoi(u * frequency, v * frequency, jitter: jitter, salt: salt)
                    let value: Float
                    switch mode {
                    case 0: value = Swift.min(f1 * 1.4, 1)
                    case 1: value = smoothstep(0, 0.25, f2 - f1)
                    default: value = id
                    }
                    out[y * size + x] = value
                }
            }
        case .rings:
            // Concentric turning marks or a thread, around a centre that may lie outside
            // the image (then the rings look like gentle arcs).
            let cx = uniform(-1...1), cy = uniform(-1...1)
            let frequency = logUniform(4, 80), spiral = chance(0.3) ? Float(integer(1...6)) : 0
            let noise = uniform(0...0.3)
            for y in 0..<size {
                for x in 0..<size {
                    let px = Float(x) / n - 0.5 - cx, py = Float(y) / n - 0.5 - cy
                    let r = (px * px + py * py).squareRoot()
                    let theta = atan2f(py, px)
                    let jitter = noise * valueNoise(r * 30, theta * 3, salt: salt)
                    out[y * size + x] = 0.5 + 0.5 * sinf(2 * .pi * (frequency * r + spiral * theta / (2 * .pi) + jitter))
                }
            }
        case .perforated:
            let frequency = logUniform(4, 25), radius = uniform(0.15...0.42), stagger = chance(0.5)
            let edge = logUniform(0.01, 0.1)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    var a = u * frequency, b = v * frequency
                    if stagger && Int(floorf(b)) & 1 == 1 { a += 0.5 }
                    a -= floorf(a) + 0.5; b -= floorf(b) + 0.5
                    out[y * size + x] = smoothstep(radius - edge, radius + edge, (a * a + b * b).squareRoot())
                }
            }
        case .gradient:
            let radial = chance(0.4), cx = uniform(-0.5...0.5), cy = uniform(-0.5...0.5), reach = uniform(0.3...1.5)
            for y in 0..<size {
                for x in 0..<size {
                    if radial {
                        let px = Float(x) / n - 0.5 - cx, py = Float(y) / n - 0.5 - cy
                        out[y * size + x] = Swift.max(0, 1 - (px * px + py * py).squareRoot() / reach)
                    } else {
                        let (u, _) = frame(x, y)
                        out[y * size + x] = u - origin.0 + 0.5
                    }
                }
            }
        case .flat:
            let grain = logUniform(0.005, 0.1)
            for y in 0..<size {
                for x in 0..<size {
                    let (u, v) = frame(x, y)
                    out[y * size + x] = 0.5 + grain * (valueNoise(u * n * 0.5, v * n * 0.5, salt: salt) - 0.5)
                }
            }
        }
        return out
    }

    /// Rescales a plane to the given mean and standard deviation.
    func stretch(_ plane: inout [Float], mean: Float, contrast: Float) {
        let count = Float(plane.count)
        let m = plane.reduce(0, +) / count
        let variance = plane.reduce(0) { $0 + ($1 - m) * ($1 - m) } / count
        let scale = contrast / Swift.max(variance.squareRoot(), 1e-3)
        for i in plane.indices { plane[i] = mean + (plane[i] - m) * scale }
    }

    /// A smooth illumination change: a linear ramp or a spot light.
    mutating func applyLighting(_ plane: inout [Float]) {
        let angle = uniform(0...(2 * Float.pi)), strength = uniform(0.05...0.35)
        let spot = chance(0.4), cx = uniform(0.2...0.8), cy = uniform(0.2...0.8), reach = uniform(0.3...0.9)
        let n = Float(size)
        for y in 0..<size {
            for x in 0..<size {
                let px = Float(x) / n, py = Float(y) / n
                let light: Float
                if spot {
                    let d = ((px - cx) * (px - cx) + (py - cy) * (py - cy)).squareRoot()
                    light = strength * (1 - 2 * Swift.min(d / reach, 1))
                } else {
                    light = strength * ((px - 0.5) * cosf(angle) + (py - 0.5) * sinf(angle)) * 2
                }
                plane[y * size + x] += light
            }
        }
    }

    // MARK: Parts

    /// The coverage (0...1, anti-aliased) of one part, or a row of small parts.
    mutating func partMask() -> [Float] {
        let n = Float(size)
        let cx = uniform(0.25...0.75) * n, cy = uniform(0.25...0.75) * n
        let angle = uniform(0...Float.pi), (c, s) = (cosf(angle), sinf(angle))
        let scale = uniform(0.15...0.45) * n
        let kind = integer(0...6)
        let aspect = uniform(0.15...0.4)
        let inner = uniform(0.25...0.6)
        let teeth = Float(integer(5...14)), toothDepth = uniform(0.03...0.12)
        let count = integer(2...5), spacing = uniform(1.1...1.8)
        // Signed distance in pixels (negative inside) at a point in the part's own frame.
        func distance(_ x: Float, _ y: Float) -> Float {
            let dx = x - cx, dy = y - cy
            let u = c * dx + s * dy, v = -s * dx + c * dy
            switch kind {
            case 0:  // disc
                return (u * u + v * v).squareRoot() - scale
            case 1:  // washer
                let r = (u * u + v * v).squareRoot()
                return Swift.max(r - scale, inner * scale - r)
            case 2:  // rectangular plate with rounded corners
                let corner = scale * 0.15
                let qx = abs(u) - scale + corner, qy = abs(v) - scale * (0.4 + aspect) + corner
                return (Swift.max(qx, 0) * Swift.max(qx, 0) + Swift.max(qy, 0) * Swift.max(qy, 0)).squareRoot()
                    + Swift.min(Swift.max(qx, qy), 0) - corner
            case 3:  // hexagon nut with its bore
                let hex = Swift.max(abs(u) * 0.866 + abs(v) * 0.5, abs(v)) - scale * 0.866
                return Swift.max(hex, inner * scale * 0.8 - (u * u + v * v).squareRoot())
            case 4:  // gear: a disc with teeth
                let r = (u * u + v * v).squareRoot(), theta = atan2f(v, u)
                return r - scale * (1 - toothDepth + toothDepth * (sinf(teeth * theta) > 0 ? 1 : -1))
            case 5:  // pin or screw: a capsule along u
                let half = scale * 1.2, radius = scale * aspect
                let qu = Swift.max(abs(u) - half, 0)
                return (qu * qu + v * v).squareRoot() - radius
            default:  // a row of small discs
                let r = scale / Float(count)
                let pitch = 2 * r * spacing
                let k = ((u / pitch) + Float(count - 1) / 2).rounded()
                let clamped = Swift.min(Swift.max(k, 0), Float(count - 1))
                let du = u - (clamped - Float(count - 1) / 2) * pitch
                return (du * du + v * v).squareRoot() - r
            }
        }
        var mask = [Float](repeating: 0, count: pixelCount)
        let edge = uniform(0.5...1.5)
        for y in 0..<size {
            for x in 0..<size {
                mask[y * size + x] = 1 - smoothstep(-edge, edge, distance(Float(x), Float(y)))
            }
        }
        // Threads across a screw's shank.
        if kind == 5 && chance(0.7) {
            let pitch = uniform(2...6)
            for y in 0..<size {
                for x in 0..<size where mask[y * size + x] > 0 {
                    let u = c * (Float(x) - cx) + s * (Float(y) - cy)
                    let notch = 0.5 + 0.5 * sinf(2 * .pi * u / pitch)
                    mask[y * size + x] *= 1 - 0.15 * notch
                }
            }
        }
        return mask
    }

    /// Removes a chunk of the part: a missing piece, a broken edge.
    mutating func cutMissingPiece(_ mask: inout [Float]) {
        let covered = mask.indices.filter { mask[$0] > 0.5 }
        guard let centre = covered.randomElement(using: &rng) else { return }
        let cx = Float(centre % size), cy = Float(centre / size)
        let radius = uniform(0.04...0.15) * Float(size)
        let squash = uniform(0.4...1), angle = uniform(0...Float.pi)
        let (c, s) = (cosf(angle), sinf(angle))
        for y in 0..<size {
            for x in 0..<size {
                let dx = Float(x) - cx, dy = Float(y) - cy
                let u = c * dx + s * dy, v = (-s * dx + c * dy) / squash
                let d = (u * u + v * v).squareRoot() - radius
                mask[y * size + x] *= smoothstep(-1, 1, d)
            }
        }
    }

    /// Lights or darkens the part near its edge (bevels, chamfers).
    mutating func shadeRim(_ plane: inout [Float], mask: [Float]) {
        let strength = uniform(-0.3...0.3)
        guard abs(strength) > 0.05 else { return }
        for y in 1..<(size - 1) {
            for x in 1..<(size - 1) {
                let i = y * size + x
                let gx = mask[i + 1] - mask[i - 1], gy = mask[i + size] - mask[i - size]
                plane[i] += strength * Swift.min((gx * gx + gy * gy).squareRoot() * 2, 1)
            }
        }
    }

    /// Darkens the background under the part, offset as if lit from one side.
    mutating func castShadow(_ plane: inout [Float], mask: [Float]) {
        let dx = integer(-6...6), dy = integer(-6...6), depth = uniform(0.1...0.5)
        for y in 0..<size {
            for x in 0..<size {
                let sx = x - dx, sy = y - dy
                guard sx >= 0, sy >= 0, sx < size, sy < size else { continue }
                plane[y * size + x] *= 1 - depth * mask[sy * size + sx]
            }
        }
    }

    // MARK: Defects

    /// Draws one defect somewhere on the image, preferring the part when there is one.
    mutating func addDefect(_ plane: inout [Float], tint: inout [Float], objectMask: [Float]) {
        let n = Float(size)
        var cx = uniform(0.1...0.9) * n, cy = uniform(0.1...0.9) * n
        if chance(0.7) {
            let covered = objectMask.indices.filter { objectMask[$0] > 0.5 }
            if let centre = covered.randomElement(using: &rng) { cx = Float(centre % size); cy = Float(centre / size) }
        }
        let sign: Float = chance(0.65) ? -1 : 1  // most defects are darker than the surface
        switch integer(0...7) {
        case 0:  // scratch: a straight or gently curved line
            let length = uniform(0.1...0.7) * n, angle = uniform(0...Float.pi), bend = uniform(-0.3...0.3)
            let width = logUniform(0.4, 2.5), depth = sign * uniform(0.1...0.5)
            var points: [(Float, Float)] = []
            for k in 0...16 {
                let t = Float(k) / 16 - 0.5
                let along = t * length, off = bend * length * (0.25 - t * t)
                points.append((cx + cosf(angle) * along - sinf(angle) * off, cy + sinf(angle) * along + cosf(angle) * off))
            }
            drawPolyline(&plane, points, width: width, delta: depth)
        case 1:  // crack: a jagged random walk that may branch
            var walks = [(cx, cy, uniform(0...(2 * Float.pi)))]
            let width = logUniform(0.4, 1.6), depth = -uniform(0.2...0.6)
            var branches = 0
            while let (x0, y0, a0) = walks.popLast() {
                var (x, y, a) = (x0, y0, a0)
                var points = [(x, y)]
                for _ in 0..<integer(8...40) {
                    a += uniform(-0.6...0.6)
                    let step = uniform(1.5...4)
                    x += cosf(a) * step; y += sinf(a) * step
                    points.append((x, y))
                    if branches < 3 && chance(0.05) { walks.append((x, y, a + uniform(-1.2...1.2))); branches += 1 }
                }
                drawPolyline(&plane, points, width: width, delta: depth)
            }
        case 2:  // spots: a few dark or bright dots
            for _ in 0..<integer(1...15) {
                let r = logUniform(0.6, 5)
                let x = cx + uniform(-0.15...0.15) * n, y = cy + uniform(-0.15...0.15) * n
                drawDisc(&plane, x, y, radius: r, delta: sign * uniform(0.1...0.5), rim: 0)
            }
        case 3:  // hole: dark inside, a bright rim
            drawDisc(&plane, cx, cy, radius: logUniform(2, 0.08 * n), delta: -uniform(0.3...0.7), rim: uniform(0...0.3))
        case 4:  // stain: an irregular soft blob, tinted
            let radius = uniform(0.05...0.25) * n, salt = nextSalt(), strength = uniform(0.3...1)
            let shift = sign * uniform(0.05...0.3)
            forEachPixel(near: cx, cy, reach: radius * 1.5) { x, y, i in
                let dx = (Float(x) - cx) / radius, dy = (Float(y) - cy) / radius
                let shape = 1 - (dx * dx + dy * dy).squareRoot() + 0.6 * (fbm(dx * 2, dy * 2, octaves: 3, persistence: 0.5, salt: salt) - 0.5)
                let w = strength * smoothstep(0, 0.3, shape)
                plane[i] += shift * w
                tint[i] = Swift.max(tint[i], w)
            }
        case 5:  // missing piece of surface: a chip filled with a flat level
            let radius = uniform(0.03...0.12) * n, level = uniform(0...1), squash = uniform(0.3...1)
            let angle = uniform(0...Float.pi), (c, s) = (cosf(angle), sinf(angle))
            forEachPixel(near: cx, cy, reach: radius + 2) { x, y, i in
                let dx = Float(x) - cx, dy = Float(y) - cy
                let u = c * dx + s * dy, v = (-s * dx + c * dy) / squash
                let w = 1 - smoothstep(radius - 1, radius + 1, abs(u) + abs(v) * 0.7)
                plane[i] = plane[i] * (1 - w) + level * w
            }
        case 6:  // pits: a cluster of tiny dots
            let spread = uniform(0.03...0.12) * n
            for _ in 0..<integer(10...60) {
                let x = cx + spread * rng.nextStandardNormal(), y = cy + spread * rng.nextStandardNormal()
                drawDisc(&plane, x, y, radius: uniform(0.4...1.3), delta: sign * uniform(0.1...0.4), rim: 0)
            }
        default:  // foreign patch: another texture inside a soft irregular region (scale, inclusion)
            let patch = texture(kind: Texture.allCases.randomElement(using: &rng)!)
            let radius = uniform(0.06...0.25) * n, aspect = uniform(0.3...1), angle = uniform(0...Float.pi)
            let (c, s) = (cosf(angle), sinf(angle)), level = uniform(0.1...0.9), amplitude = uniform(0.1...0.5)
            forEachPixel(near: cx, cy, reach: radius) { x, y, i in
                let dx = Float(x) - cx, dy = Float(y) - cy
                let u = (c * dx + s * dy) / radius, v = (-s * dx + c * dy) / (radius * aspect)
                let w = 1 - smoothstep(0.7, 1, (u * u + v * v).squareRoot())
                plane[i] = plane[i] * (1 - w) + (level + amplitude * (patch[i] - 0.5)) * w
            }
        }
    }

    /// Calls `body(x, y, index)` for the pixels within `reach` of a point (a square).
    func forEachPixel(near cx: Float, _ cy: Float, reach: Float, _ body: (Int, Int, Int) -> Void) {
        let x0 = Swift.max(0, Int(cx - reach)), x1 = Swift.min(size - 1, Int(cx + reach) + 1)
        let y0 = Swift.max(0, Int(cy - reach)), y1 = Swift.min(size - 1, Int(cy + reach) + 1)
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 { for x in x0...x1 { body(x, y, y * size + x) } }
    }

    /// Adds `delta` along a polyline with a Gaussian profile across it.
    func drawPolyline(_ plane: inout [Float], _ points: [(Float, Float)], width: Float, delta: Float) {
        // Segments share end points: the stroke keeps each pixel's strongest weight, so the
        // joints are not darkened twice.
        var stroke = [Float](repeating: 0, count: pixelCount)
        for (a, b) in zip(points, points.dropFirst()) {
            let reach = 2 * width + 1
            let minX = Swift.max(0, Int(Swift.min(a.0, b.0) - reach)), maxX = Swift.min(size - 1, Int(Swift.max(a.0, b.0) + reach))
            let minY = Swift.max(0, Int(Swift.min(a.1, b.1) - reach)), maxY = Swift.min(size - 1, Int(Swift.max(a.1, b.1) + reach))
            guard minX <= maxX, minY <= maxY else { continue }
            let ex = b.0 - a.0, ey = b.1 - a.1, length2 = Swift.max(ex * ex + ey * ey, 1e-6)
            for y in minY...maxY {
                for x in minX...maxX {
                    let px = Float(x) - a.0, py = Float(y) - a.1
                    let t = Swift.min(Swift.max((px * ex + py * ey) / length2, 0), 1)
                    let dx = px - t * ex, dy = py - t * ey
                    let i = y * size + x
                    stroke[i] = Swift.max(stroke[i], expf(-(dx * dx + dy * dy) / (width * width)))
                }
            }
        }
        for i in 0..<pixelCount where stroke[i] > 0.01 { plane[i] += delta * stroke[i] }
    }

    /// Adds `delta` inside a soft disc and `rim` on a ring just outside it.
    func drawDisc(_ plane: inout [Float], _ cx: Float, _ cy: Float, radius: Float, delta: Float, rim: Float) {
        forEachPixel(near: cx, cy, reach: radius + 3) { x, y, i in
            let d = ((Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)).squareRoot()
            plane[i] += delta * (1 - smoothstep(radius - 0.7, radius + 0.7, d))
            if rim != 0 { plane[i] += rim * expf(-(d - radius - 1) * (d - radius - 1)) }
        }
    }

    // MARK: Colour and camera

    /// A colour: mostly greys and muted metal tones, sometimes saturated (paint, anodising).
    mutating func randomColour() -> (Float, Float, Float) {
        let hue = uniform(0...1), saturation = chance(0.7) ? uniform(0...0.25) : uniform(0.25...0.9)
        let value = uniform(0.05...1)
        let h = hue * 6, f = h - floorf(h)
        let p = value * (1 - saturation), q = value * (1 - saturation * f), t = value * (1 - saturation * (1 - f))
        switch Int(h) % 6 {
        case 0: return (value, t, p)
        case 1: return (q, value, p)
        case 2: return (p, value, t)
        case 3: return (p, q, value)
        case 4: return (t, p, value)
        default: return (value, p, q)
        }
    }

    mutating func finish(_ intensity: [Float], objectMask: [Float], tint: [Float]) -> Image {
        let grey = chance(0.45)
        // Each layer maps intensity through its own palette: dark colour to light colour.
        func palette(_ painter: inout Painter) -> ((Float, Float, Float), (Float, Float, Float)) {
            var dark = painter.randomColour(), light = painter.randomColour()
            // Keep dark darker than light, so that structure keeps its sign in every channel.
            if dark.0 + dark.1 + dark.2 > light.0 + light.1 + light.2 { swap(&dark, &light) }
            let darkScale = painter.uniform(0...0.4)
            return ((dark.0 * darkScale, dark.1 * darkScale, dark.2 * darkScale), light)
        }
        let background = palette(&self), part = palette(&self)
        let stain = randomColour()
        let gamma = logUniform(0.6, 1.6), noise = chance(0.7) ? logUniform(0.003, 0.05) : 0
        let blur = chance(0.3) ? integer(1...2) : 0
        let vignette = chance(0.25) ? uniform(0.1...0.5) : 0
        var rgb = [[Float]](repeating: [Float](repeating: 0, count: pixelCount), count: 3)
        let n = Float(size)
        for y in 0..<size {
            for x in 0..<size {
                let i = y * size + x
                var v = Swift.min(Swift.max(intensity[i], 0), 1)
                if vignette > 0 {
                    let dx = Float(x) / n - 0.5, dy = Float(y) / n - 0.5
                    v *= 1 - vignette * (dx * dx + dy * dy) * 2
                }
                v = powf(v, gamma)
                for ch in 0..<3 {
                    var value: Float
                    if grey {
                        value = v
                    } else {
                        let b = (ch == 0 ? background.0.0 : ch == 1 ? background.0.1 : background.0.2,
                                 ch == 0 ? background.1.0 : ch == 1 ? background.1.1 : background.1.2)
                        let p = (ch == 0 ? part.0.0 : ch == 1 ? part.0.1 : part.0.2,
                                 ch == 0 ? part.1.0 : ch == 1 ? part.1.1 : part.1.2)
                        let m = objectMask[i]
                        value = (b.0 + (b.1 - b.0) * v) * (1 - m) + (p.0 + (p.1 - p.0) * v) * m
                        let s = ch == 0 ? stain.0 : ch == 1 ? stain.1 : stain.2
                        value = value * (1 - 0.6 * tint[i]) + s * v * 0.6 * tint[i]
                    }
                    rgb[ch][i] = value
                }
            }
        }
        for _ in 0..<blur { for ch in 0..<3 { rgb[ch] = boxBlur(rgb[ch]) } }
        var pixels = [UInt8](repeating: 0, count: pixelCount * 3)
        for i in 0..<pixelCount {
            // Sensor noise is shared by the channels of grey images (one sensor value).
            let shared = noise > 0 ? noise * rng.nextStandardNormal() : 0
            for ch in 0..<3 {
                let own = noise > 0 && !grey ? noise * 0.5 * rng.nextStandardNormal() : 0
                let value = Swift.min(Swift.max(rgb[ch][i] + shared + own, 0), 1)
                pixels[i * 3 + ch] = UInt8((value * 255).rounded())
            }
        }
        return Image(width: size, height: size, channels: 3, pixels: pixels)
    }

    /// A 3x3 box blur with edges replicated (defocus).
    func boxBlur(_ plane: [Float]) -> [Float] {
        var out = plane
        for y in 0..<size {
            for x in 0..<size {
                var total: Float = 0
                for dy in -1...1 {
                    for dx in -1...1 {
                        let sx = Swift.min(Swift.max(x + dx, 0), size - 1), sy = Swift.min(Swift.max(y + dy, 0), size - 1)
                        total += plane[sy * size + sx]
                    }
                }
                out[y * size + x] = total / 9
            }
        }
        return out
    }
}

// MARK: - Noise primitives

/// A hash of a lattice point to a uniform value in [0, 1).
@inline(__always)
private func latticeValue(_ x: Int32, _ y: Int32, salt: UInt64) -> Float {
    var h = UInt64(UInt32(bitPattern: x)) | (UInt64(UInt32(bitPattern: y)) << 32)
    h ^= salt
    h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
    h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
    h ^= h >> 31
    return Float(h >> 40) * (1.0 / 16_777_216.0)
}

/// Value noise on hashed lattice values, in [0, 1).
@inline(__always)
private func valueNoise(_ x: Float, _ y: Float, salt: UInt64) -> Float {
    // Lattice coordinates wrap into Int32: they stay far below 2^31 for the frequencies used here.
    valueNoise(x, y) { i, j in latticeValue(Int32(truncatingIfNeeded: i), Int32(truncatingIfNeeded: j), salt: salt) }
}

/// Fractal sum of value noise: `octaves` layers, each at twice the frequency and
/// `persistence` times the amplitude of the previous one, normalised to [0, 1).
private func fbm(_ x: Float, _ y: Float, octaves: Int, persistence: Float, salt: UInt64) -> Float {
    var total: Float = 0, amplitude: Float = 1, weight: Float = 0, frequency: Float = 1
    for octave in 0..<octaves {
        total += amplitude * valueNoise(x * frequency, y * frequency, salt: salt &+ UInt64(octave) &* 0x9E37_79B9)
        weight += amplitude
        amplitude *= persistence
        frequency *= 2
    }
    return total / weight
}

/// Cellular (Worley) noise on a jittered unit lattice: the distances to the nearest and
/// second-nearest feature points, and a per-cell value of the nearest one.
private func voronoi(_ x: Float, _ y: Float, jitter: Float, salt: UInt64) -> (Float, Float, Float) {
    let fx = floorf(x), fy = floorf(y)
    let ix = Int32(truncatingIfNeeded: Int(fx)), iy = Int32(truncatingIfNeeded: Int(fy))
    var f1: Float = 9, f2: Float = 9, id: Float = 0
    for dy: Int32 in -1...1 {
        for dx: Int32 in -1...1 {
            let cx = ix &+ dx, cy = iy &+ dy
            let px = Float(cx) + 0.5 + jitter * (latticeValue(cx, cy, salt: salt) - 0.5)
            let py = Float(cy) + 0.5 + jitter * (latticeValue(cx, cy, salt: salt ^ 0xABCD) - 0.5)
            let d = ((x - px) * (x - px) + (y - py) * (y - py)).squareRoot()
            if d < f1 {
                f2 = f1; f1 = d; id = latticeValue(cx, cy, salt: salt ^ 0x1234)
            } else if d < f2 {
                f2 = d
            }
        }
    }
    return (f1, f2, id)
}

@inline(__always)
private func smoothstep(_ edge0: Float, _ edge1: Float, _ x: Float) -> Float {
    let t = Swift.min(Swift.max((x - edge0) / (edge1 - edge0), 0), 1)
    return t * t * (3 - 2 * t)
}
