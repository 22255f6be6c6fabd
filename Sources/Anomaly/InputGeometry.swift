// The shape of the network input: images keep their aspect ratio when the parts share one.

/// How images are sized for the backbone. A square input suits parts photographed in
/// frames of varying shape (each frame is stretched to the square, as before); parts that
/// always come in the same oblong frame (a commutator strip, a long profile) keep that
/// frame's aspect ratio, so that a small defect is not squeezed along the long side.
public enum InputGeometry {
    /// The largest aspect ratio kept (long side over short side); a longer strip is
    /// stretched to this ratio.
    public static let maximumAspectRatio = 4.0
    /// Frames closer to square than this are made square.
    public static let squareBelow = 1.25
    /// The training frames share one shape when the largest aspect ratio is at most this
    /// factor above the smallest.
    public static let sameShapeTolerance = 1.2

    /// The input's width and height for a short side and an aspect ratio (width over
    /// height). The long side is rounded to a multiple of 32 (the backbone's coarsest
    /// stride) and is never shorter than the short side.
    public static func size(shortSide: Int, aspectRatio: Double) -> (width: Int, height: Int) {
        guard aspectRatio.isFinite, aspectRatio > 0, aspectRatio != 1 else { return (shortSide, shortSide) }
        let ratio = aspectRatio >= 1 ? aspectRatio : 1 / aspectRatio
        let long = Swift.max(shortSide, Int((Double(shortSide) * ratio / 32).rounded()) * 32)
        return aspectRatio >= 1 ? (long, shortSide) : (shortSide, long)
    }

    /// The aspect ratio (width over height) the engine keeps for training frames of these
    /// sizes: 1 unless they share one shape (within ``sameShapeTolerance``) at least
    /// ``squareBelow`` away from square; then their median ratio, rounded to 2 decimals and
    /// limited to ``maximumAspectRatio``.
    public static func aspectRatio(ofFrames frames: [(width: Int, height: Int)]) -> Double {
        let ratios = frames.filter { $0.width > 0 && $0.height > 0 }.map { Double($0.width) / Double($0.height) }.sorted()
        guard let low = ratios.first, let high = ratios.last, high / low <= sameShapeTolerance else { return 1 }
        let median = ratios[ratios.count / 2]
        guard median >= squareBelow || median <= 1 / squareBelow else { return 1 }
        let limited = Swift.min(Swift.max(median, 1 / maximumAspectRatio), maximumAspectRatio)
        return (limited * 100).rounded() / 100
    }
}
