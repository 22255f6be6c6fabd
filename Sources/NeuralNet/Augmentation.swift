// Seeded data augmentation for few-shot training, on single images [H, W, C] (Float).
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random transformations of an image tensor `[H, W, C]`, drawn from a seeded generator,
/// so the same seed gives the same augmented images.
///
/// Geometric changes keep the size: flips, 90-degree rotations (square images only),
/// a small affine warp (rotation, scale, translation; bilinear, edges replicated), and a
/// random crop resized back. Photometric changes: brightness and contrast, Gaussian noise.
public struct Augmentation: Sendable {
    public var horizontalFlip = true
    public var verticalFlip = false
    public var rotate90 = false
    /// Maximum rotation of the affine warp, in degrees (0 disables).
    public var maxRotationDegrees: Float = 0
    /// Maximum relative scale change of the warp (0.1 = 90 % to 110 %).
    public var maxScaleChange: Float = 0
    /// Maximum translation of the warp, as a fraction of the size.
    public var maxTranslation: Float = 0
    /// Smallest crop side as a fraction of the image (1 disables cropping).
    public var minimumCropFraction: Float = 1
    /// Maximum brightness shift, in units of the value range (values are normalised).
    public var maxBrightness: Float = 0
    /// Maximum relative contrast change.
    public var maxContrast: Float = 0
    /// Standard deviation of added Gaussian noise.
    public var noise: Float = 0

    public init() {}

    /// A preset for industrial parts that may lie at any angle: flips both ways, 90-degree
    /// turns, small warps and photometric jitter.
    public static var anyOrientation: Augmentation {
        var a = Augmentation()
        a.horizontalFlip = true; a.verticalFlip = true; a.rotate90 = true
        a.maxRotationDegrees = 15; a.maxScaleChange = 0.1; a.maxTranslation = 0.05
        a.maxBrightness = 0.1; a.maxContrast = 0.1; a.noise = 0.02
        return a
    }

    /// Applies a random draw of the enabled transformations to `[H, W, C]`.
    public func callAsFunction<G: RandomNumberGenerator>(_ image: Tensor, using generator: inout G) -> Tensor {
        precondition(image.rank == 3, "Augmentation: expects [H, W, C], got \(image.shape)")
        var x = image
        if horizontalFlip && Bool.random(using: &generator) { x = flipped(x, horizontal: true) }
        if verticalFlip && Bool.random(using: &generator) { x = flipped(x, horizontal: false) }
        if rotate90 && x.shape[0] == x.shape[1] { x = rotated90(x, times: Int.random(in: 0..<4, using: &generator)) }
        if minimumCropFraction < 1 {
            let f = Float.random(in: minimumCropFraction...1, using: &generator)
            let (h, w) = (x.shape[0], x.shape[1])
            let ch = Swift.max(1, Int(Float(h) * f)), cw = Swift.max(1, Int(Float(w) * f))
            let top = Int.random(in: 0...(h - ch), using: &generator), left = Int.random(in: 0...(w - cw), using: &generator)
            x = warp(x, scale: (Float(ch) / Float(h), Float(cw) / Float(w)), angle: 0,
                     shift: (Float(top) + Float(ch) / 2 - Float(h) / 2, Float(left) + Float(cw) / 2 - Float(w) / 2))
        }
        if maxRotationDegrees > 0 || maxScaleChange > 0 || maxTranslation > 0 {
            let angle = Float.random(in: -maxRotationDegrees...maxRotationDegrees, using: &generator) * .pi / 180
            let s = 1 + Float.random(in: -maxScaleChange...maxScaleChange, using: &generator)
            let ty = Float.random(in: -maxTranslation...maxTranslation, using: &generator) * Float(x.shape[0])
            let tx = Float.random(in: -maxTranslation...maxTranslation, using: &generator) * Float(x.shape[1])
            x = warp(x, scale: (1 / s, 1 / s), angle: angle, shift: (ty, tx))
        }
        if maxBrightness > 0 || maxContrast > 0 {
            let b = Float.random(in: -maxBrightness...maxBrightness, using: &generator)
            let c = 1 + Float.random(in: -maxContrast...maxContrast, using: &generator)
            let mean = x.mean()
            x = x.map { ($0 - mean) * c + mean + b }
        }
        if noise > 0 {
            x = x + Tensor(randomNormal: x.shape, standardDeviation: noise, using: &generator)
        }
        return x
    }
}

/// The image mirrored left-right (`horizontal`) or top-bottom.
public func flipped(_ x: Tensor, horizontal: Bool) -> Tensor {
    let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
    let source = x.scalars
    return Tensor(uninitializedShape: x.shape) { out in
        for y in 0..<h {
            for i in 0..<w {
                let (sy, sx) = horizontal ? (y, w - 1 - i) : (h - 1 - y, i)
                for ch in 0..<c { out[(y * w + i) * c + ch] = source[(sy * w + sx) * c + ch] }
            }
        }
    }
}

/// The image turned by `times` quarter turns counter-clockwise (square images keep their
/// shape; others swap height and width).
public func rotated90(_ x: Tensor, times: Int) -> Tensor {
    var result = x
    for _ in 0..<((times % 4 + 4) % 4) {
        let (h, w, c) = (result.shape[0], result.shape[1], result.shape[2])
        let source = result.scalars
        result = Tensor(uninitializedShape: [w, h, c]) { out in
            // Output (y, x) of the [w, h] image reads input (x, w - 1 - y).
            for y in 0..<w {
                for i in 0..<h {
                    for ch in 0..<c { out[(y * h + i) * c + ch] = source[(i * w + (w - 1 - y)) * c + ch] }
                }
            }
        }
    }
    return result
}

/// Resamples the image through an affine map about its centre: output pixel `p` reads
/// input `R(angle) * diag(scale) * (p - centre) + centre + shift` (bilinear, edges
/// replicated).
public func warp(_ x: Tensor, scale: (Float, Float), angle: Float, shift: (Float, Float)) -> Tensor {
    let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
    let source = x.scalars
    let cy = Float(h - 1) / 2, cx = Float(w - 1) / 2
    let cosA = cos(angle), sinA = sin(angle)
    return Tensor(uninitializedShape: x.shape) { out in
        for y in 0..<h {
            for i in 0..<w {
                let dy = (Float(y) - cy) * scale.0, dx = (Float(i) - cx) * scale.1
                let sy = Swift.min(Swift.max(cosA * dy + sinA * dx + cy + shift.0, 0), Float(h - 1))
                let sx = Swift.min(Swift.max(-sinA * dy + cosA * dx + cx + shift.1, 0), Float(w - 1))
                let y0 = Int(sy), x0 = Int(sx)
                let y1 = Swift.min(y0 + 1, h - 1), x1 = Swift.min(x0 + 1, w - 1)
                let fy = sy - Float(y0), fx = sx - Float(x0)
                for ch in 0..<c {
                    let top = source[(y0 * w + x0) * c + ch] * (1 - fx) + source[(y0 * w + x1) * c + ch] * fx
                    let bottom = source[(y1 * w + x0) * c + ch] * (1 - fx) + source[(y1 * w + x1) * c + ch] * fx
                    out[(y * w + i) * c + ch] = top * (1 - fy) + bottom * fy
                }
            }
        }
    }
}
