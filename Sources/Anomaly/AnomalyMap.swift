// Turning patch distances into a per-pixel anomaly map, an image score, a mask and boxes.
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A per-pixel anomaly map: raw anomaly values (patch distances, upsampled and smoothed),
/// row-major `[height, width]`.
public struct AnomalyMap: Sendable, Equatable {
    /// Map width in pixels.
    public var width: Int
    /// Map height in pixels.
    public var height: Int
    /// Raw anomaly values, row-major `[height, width]`.
    public var values: [Float]

    /// A map of `width * height` values, row-major.
    public init(width: Int, height: Int, values: [Float]) {
        precondition(values.count == width * height, "AnomalyMap: \(values.count) values for \(width)x\(height)")
        self.width = width; self.height = height; self.values = values
    }

    /// The largest value: the image's raw anomaly score.
    public var maximum: Float { values.max() ?? 0 }

    /// The mean of the largest `fraction` of the values (at least one value); the
    /// maximum when `fraction` is 0.
    public func topMean(fraction: Double) -> Float {
        guard fraction > 0, values.count > 1 else { return maximum }
        let k = Swift.min(values.count, Swift.max(1, Int((Double(values.count) * fraction).rounded())))
        if k == 1 { return maximum }
        // Selection, not a full sort: sorting 100 000 values per image cost ~25 ms, as much
        // as the bank search. Summed in Double after selection, so the result does not
        // depend on the order the selection left the values in beyond rounding.
        var copy = values
        let top = copy.withUnsafeMutableBufferPointer { buffer -> Double in
            selectLargest(k, in: buffer)
            return buffer[0..<k].reduce(0.0) { $0 + Double($1) }
        }
        return Float(top / Double(k))
    }

    /// Upsamples a `[gh, gw]` grid of values to `width x height` (bilinear, pixel centres
    /// aligned), then smooths it with a Gaussian of standard deviation `sigma` pixels
    /// (0 = none), as PatchCore does before taking the maximum.
    ///
    /// Both steps are linear and separable, so they are folded into one `[size, grid]`
    /// matrix per axis (blur x upsample) and applied as two small matrix products:
    /// `map = Ay * grid * Ax^T`. For a 28 x 28 grid and a 224 x 224 map with sigma 4 that
    /// is 1.6 M multiply-adds instead of 3.5 M for upsampling and then blurring with
    /// reflected edges tap by tap. ``referenceFromGrid(_:gridWidth:gridHeight:width:height:sigma:)``
    /// is that plain path, and the tests compare the two.
    public static func fromGrid(_ grid: [Float], gridWidth: Int, gridHeight: Int, width: Int, height: Int,
                                sigma: Float) -> AnomalyMap {
        let ax = resamplingMatrix(from: gridWidth, to: width, sigma: sigma)    // [width, gridWidth]
        let ay = gridWidth == gridHeight && width == height
            ? ax : resamplingMatrix(from: gridHeight, to: height, sigma: sigma) // [height, gridHeight]
        // rows = grid * Ax^T: [gridHeight, width]
        var rows = [Float](repeating: 0, count: gridHeight * width)
        for j in 0..<gridHeight {
            for x in 0..<width {
                var sum: Float = 0
                for i in 0..<gridWidth { sum = sum.addingProduct(grid[j * gridWidth + i], ax[x * gridWidth + i]) }
                rows[j * width + x] = sum
            }
        }
        // map = Ay * rows: [height, width], a row at a time with whole rows of `rows` added
        // (contiguous, vectorised).
        var map = [Float](repeating: 0, count: height * width)
        map.withUnsafeMutableBufferPointer { out in
            rows.withUnsafeBufferPointer { rows in
                for y in 0..<height {
                    let target = out.baseAddress! + y * width
                    for j in 0..<gridHeight {
                        let weight = ay[y * gridHeight + j]
                        if weight == 0 { continue }
                        let source = rows.baseAddress! + j * width
                        for x in 0..<width { target[x] = target[x].addingProduct(weight, source[x]) }
                    }
                }
            }
        }
        return AnomalyMap(width: width, height: height, values: map)
    }

    /// ``fromGrid(_:gridWidth:gridHeight:width:height:sigma:)`` by its definition: bilinear
    /// upsampling, then the Gaussian blur with reflected edges tap by tap. Same result up
    /// to rounding; the tests compare the two.
    public static func referenceFromGrid(_ grid: [Float], gridWidth: Int, gridHeight: Int, width: Int, height: Int,
                                         sigma: Float) -> AnomalyMap {
        var map = upsample(grid, from: (gridWidth, gridHeight), to: (width, height))
        if sigma > 0 { map = gaussianBlur(map, width: width, height: height, sigma: sigma) }
        return AnomalyMap(width: width, height: height, values: map)
    }

    /// The `[outSize, inSize]` matrix of one axis: bilinear upsampling (align_corners =
    /// false, edges clamped) followed by the Gaussian of `sigma` (truncated at 4 sigma,
    /// edges reflected; none when sigma is 0).
    static func resamplingMatrix(from inSize: Int, to outSize: Int, sigma: Float) -> [Float] {
        // Upsampling: two taps per output position.
        var up = [Float](repeating: 0, count: outSize * inSize)
        let scale = Float(inSize) / Float(outSize)
        for o in 0..<outSize {
            let s = Swift.max((Float(o) + 0.5) * scale - 0.5, 0)
            let i0 = Swift.min(Int(s), inSize - 1), i1 = Swift.min(i0 + 1, inSize - 1)
            let f = s - Float(i0)
            up[o * inSize + i0] += 1 - f
            up[o * inSize + i1] += f
        }
        guard sigma > 0 else { return up }
        let kernel = gaussianKernel(sigma: sigma), radius = kernel.count / 2
        var out = [Float](repeating: 0, count: outSize * inSize)
        for o in 0..<outSize {
            for (k, w) in kernel.enumerated() {
                let source = reflectIndex(o + k - radius, outSize)
                for i in 0..<inSize { out[o * inSize + i] += w * up[source * inSize + i] }
            }
        }
        return out
    }

    /// The binary mask of pixels strictly above `threshold`.
    public func mask(threshold: Float) -> [Bool] { values.map { $0 > threshold } }
}

/// Reorders `values` so that its first `k` elements are its `k` largest (in no particular
/// order): quickselect with a median-of-three pivot, expected linear time.
func selectLargest(_ k: Int, in values: UnsafeMutableBufferPointer<Float>) {
    var low = 0, high = values.count - 1
    guard k > 0, k < values.count else { return }
    while low < high {
        // Median of three as the pivot, so that sorted or constant runs do not go quadratic.
        let mid = low + (high - low) / 2
        let (a, b, c) = (values[low], values[mid], values[high])
        let pivot = Swift.max(Swift.min(a, b), Swift.min(Swift.max(a, b), c))
        // Hoare partition, descending: [low, j] >= pivot >= [j + 1, high].
        var i = low - 1, j = high + 1
        while true {
            repeat { i += 1 } while values[i] > pivot
            repeat { j -= 1 } while values[j] < pivot
            if i >= j { break }
            values.swapAt(i, j)
        }
        if k - 1 <= j { high = j } else { low = j + 1 }
    }
}

/// Source positions of bilinear resampling along one axis (align_corners = false, edges
/// clamped): for each output position the two source indices and the second one's weight.
func bilinearAxis(_ inSize: Int, _ outSize: Int) -> [(Int, Int, Float)] {
    let scale = Float(inSize) / Float(outSize)
    return (0..<outSize).map { o in
        let s = Swift.max((Float(o) + 0.5) * scale - 0.5, 0)
        let i0 = Swift.min(Int(s), inSize - 1)
        return (i0, Swift.min(i0 + 1, inSize - 1), s - Float(i0))
    }
}

/// Bilinear upsampling of a single-channel grid, align_corners = false, edges clamped.
func upsample(_ grid: [Float], from source: (Int, Int), to target: (Int, Int)) -> [Float] {
    let (sw, sh) = source, (tw, th) = target
    let xs = bilinearAxis(sw, tw), ys = bilinearAxis(sh, th)
    var out = [Float](repeating: 0, count: tw * th)
    for y in 0..<th {
        let (y0, y1, fy) = ys[y]
        for x in 0..<tw {
            let (x0, x1, fx) = xs[x]
            let top = grid[y0 * sw + x0] * (1 - fx) + grid[y0 * sw + x1] * fx
            let bottom = grid[y1 * sw + x0] * (1 - fx) + grid[y1 * sw + x1] * fx
            out[y * tw + x] = top * (1 - fy) + bottom * fy
        }
    }
    return out
}

/// The normalised Gaussian taps `-r...r`, truncated at `r = ceil(4 sigma)` (at least 1).
func gaussianKernel(sigma: Float) -> [Float] {
    let radius = Swift.max(1, Int((4 * sigma).rounded(.up)))
    let kernel = (-radius...radius).map { exp(-Float($0 * $0) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    return kernel.map { $0 / total }
}

/// Index `i` reflected into `0..<n` (`-1 -> 0`, `n -> n - 1`: the edge sample repeats).
func reflectIndex(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var j = i
    while j < 0 || j >= n { j = j < 0 ? -j - 1 : 2 * n - j - 1 }
    return j
}

/// Separable Gaussian blur with a kernel truncated at 4 sigma, edges reflected. The plain
/// reference for ``AnomalyMap/fromGrid(_:gridWidth:gridHeight:width:height:sigma:)``.
func gaussianBlur(_ values: [Float], width: Int, height: Int, sigma: Float) -> [Float] {
    let kernel = gaussianKernel(sigma: sigma), radius = kernel.count / 2
    let reflect = reflectIndex
    var temp = [Float](repeating: 0, count: values.count)
    for y in 0..<height {
        for x in 0..<width {
            var s: Float = 0
            for (k, w) in kernel.enumerated() { s += values[y * width + reflect(x + k - radius, width)] * w }
            temp[y * width + x] = s
        }
    }
    var out = [Float](repeating: 0, count: values.count)
    for y in 0..<height {
        for x in 0..<width {
            var s: Float = 0
            for (k, w) in kernel.enumerated() { s += temp[reflect(y + k - radius, height) * width + x] * w }
            out[y * width + x] = s
        }
    }
    return out
}

/// A defect region found in an anomaly map: its bounding box, area and peak score.
public struct DefectBox: Sendable, Equatable, Codable {
    /// The bounding box, in map pixels.
    public var x: Int, y: Int, width: Int, height: Int
    /// Pixels of the region (in map pixels, before any rescaling of the box).
    public var area: Int
    /// The largest raw anomaly value inside the region.
    public var peak: Float

    public init(x: Int, y: Int, width: Int, height: Int, area: Int, peak: Float) {
        self.x = x; self.y = y; self.width = width; self.height = height; self.area = area; self.peak = peak
    }
}

extension AnomalyMap {
    /// The connected regions (8-connectivity) of pixels above `threshold`, largest peak
    /// first, leaving out regions smaller than `minimumArea` pixels.
    public func boxes(threshold: Float, minimumArea: Int = 1) -> [DefectBox] {
        let mask = self.mask(threshold: threshold)
        let (labels, count) = AnomalyMetrics.connectedComponents(mask, width: width, height: height)
        guard count > 0 else { return [] }
        var peaks = [Float](repeating: -.infinity, count: count)
        for (i, label) in labels.enumerated() where label > 0 { peaks[Int(label) - 1] = Swift.max(peaks[Int(label) - 1], values[i]) }
        let regions = AnomalyMetrics.regions(labels: labels, count: count, width: width)
        return zip(regions, peaks).filter { $0.0.area >= minimumArea }
            .map { DefectBox(x: $0.0.x, y: $0.0.y, width: $0.0.width, height: $0.0.height, area: $0.0.area, peak: $0.1) }
            .sorted { $0.peak > $1.peak }
    }

    /// The map resampled to another size (bilinear), e.g. back to the original image.
    public func resized(width newWidth: Int, height newHeight: Int) -> AnomalyMap {
        AnomalyMap(width: newWidth, height: newHeight, values: upsample(values, from: (width, height), to: (newWidth, newHeight)))
    }

    /// Calls `body(y, row)` for each row `y` of the map resampled to `newWidth` x `newHeight`,
    /// in order, with the same values as ``resized(width:height:)`` but without the whole
    /// resampled map in memory: each source row is interpolated across once and each output
    /// row is a blend of two of those (for drawing large heat maps in one pass).
    public func forEachResizedRow(width newWidth: Int, height newHeight: Int,
                                  _ body: (Int, UnsafeBufferPointer<Float>) -> Void) {
        guard newWidth > 0, newHeight > 0 else { return }
        let xs = bilinearAxis(width, newWidth), ys = bilinearAxis(height, newHeight)
        // Two source rows interpolated across (the last two used), and the output row.
        var across = [[Float]](repeating: [Float](repeating: 0, count: newWidth), count: 2)
        var cached = [-1, -1]
        var row = [Float](repeating: 0, count: newWidth)
        func slot(_ j: Int) -> Int {
            if cached[0] == j { return 0 }
            if cached[1] == j { return 1 }
            // Replace the row the current output row does not need.
            let k = cached[0] < cached[1] ? 0 : 1
            cached[k] = j
            values.withUnsafeBufferPointer { grid in
                across[k].withUnsafeMutableBufferPointer { out in
                    let source = grid.baseAddress! + j * width
                    for x in 0..<newWidth {
                        let (x0, x1, fx) = xs[x]
                        out[x] = source[x0] * (1 - fx) + source[x1] * fx
                    }
                }
            }
            return k
        }
        for y in 0..<newHeight {
            let (y0, y1, fy) = ys[y]
            let top = slot(y0), bottom = slot(y1)
            across[top].withUnsafeBufferPointer { t in
                across[bottom].withUnsafeBufferPointer { b in
                    row.withUnsafeMutableBufferPointer { out in
                        for x in 0..<newWidth { out[x] = t[x] * (1 - fy) + b[x] * fy }
                    }
                }
            }
            row.withUnsafeBufferPointer { body(y, $0) }
        }
    }
}
