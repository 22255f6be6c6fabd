// Evaluation metrics for anomaly detection and localisation, as reported for MVTec AD:
// image-level AUROC, pixel-level AUROC, AUPRO (per-region overlap up to an FPR limit) and
// the best F1 over thresholds; plus the connected components that AUPRO and the scorer's
// bounding boxes both need.
//
// All curves here are exact: every distinct score is a threshold. The sweeps sort the
// scores once (O(n log n)) and keep 4-8 bytes per pixel, so millions of pixels are fine.

/// The axis-aligned bounding box and size of one connected component of a mask.
public struct Region: Sendable, Hashable {
    /// Column of the leftmost pixel.
    public var x: Int
    /// Row of the topmost pixel.
    public var y: Int
    /// Columns spanned (`maxX - x + 1`).
    public var width: Int
    /// Rows spanned (`maxY - y + 1`).
    public var height: Int
    /// Number of pixels in the component.
    public var area: Int

    /// Creates a region from its box and pixel count.
    public init(x: Int, y: Int, width: Int, height: Int, area: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
        self.area = area
    }
}

/// Anomaly-detection metrics and mask utilities.
///
/// Scores must not be NaN (checked with a precondition). Larger scores mean "more
/// anomalous"; labels and masks are `true` for anomalous images / pixels.
public enum AnomalyMetrics {
    // MARK: - AUROC

    /// The area under the ROC curve of image scores: the probability that a random
    /// anomalous image scores higher than a random normal one, ties counting one half
    /// (the Mann-Whitney U statistic with average ranks, divided by `P * N`).
    ///
    /// - Parameters:
    ///   - scores: one score per image.
    ///   - labels: `true` for anomalous images; same count as `scores`.
    /// - Returns: a value in [0, 1]; `.nan` when either class is empty (AUROC undefined).
    public static func imageAUROC(scores: [Float], labels: [Bool]) -> Double {
        precondition(
            scores.count == labels.count,
            "AnomalyMetrics.imageAUROC: \(scores.count) scores but \(labels.count) labels")
        var positives = [Float](), negatives = [Float]()
        for (score, label) in zip(scores, labels) {
            if label { positives.append(score) } else { negatives.append(score) }
        }
        return auroc(positives: &positives, negatives: &negatives)
    }

    /// The ROC AUC over all pixels of all images together (each pixel one sample).
    ///
    /// Memory: one Float per pixel (the scores split into anomalous and normal, then
    /// sorted), not an index or a pair per pixel.
    ///
    /// - Parameters:
    ///   - maps: per image, the anomaly map in row-major order.
    ///   - masks: per image, the ground-truth mask, same count as its map.
    /// - Returns: a value in [0, 1]; `.nan` when no pixel, or every pixel, is anomalous.
    public static func pixelAUROC(maps: [[Float]], masks: [[Bool]]) -> Double {
        precondition(maps.count == masks.count, "AnomalyMetrics.pixelAUROC: \(maps.count) maps but \(masks.count) masks")
        var positiveCount = 0, total = 0
        for (image, (map, mask)) in zip(maps, masks).enumerated() {
            precondition(
                map.count == mask.count,
                "AnomalyMetrics.pixelAUROC: image \(image) has \(map.count) scores but \(mask.count) mask pixels")
            total += map.count
            for m in mask where m { positiveCount += 1 }
        }
        var positives = [Float](), negatives = [Float]()
        positives.reserveCapacity(positiveCount)
        negatives.reserveCapacity(total - positiveCount)
        for (map, mask) in zip(maps, masks) {
            for (score, label) in zip(map, mask) {
                if label { positives.append(score) } else { negatives.append(score) }
            }
        }
        return auroc(positives: &positives, negatives: &negatives)
    }

    /// Mann-Whitney AUC of two samples (sorted in place): for every positive, the number of
    /// negatives below it plus half of those equal to it.
    private static func auroc(positives: inout [Float], negatives: inout [Float]) -> Double {
        guard !positives.isEmpty, !negatives.isEmpty else { return .nan }
        precondition(
            !positives.contains(where: \.isNaN) && !negatives.contains(where: \.isNaN),
            "AnomalyMetrics: scores contain NaN")
        positives.sort()
        negatives.sort()
        var u = 0.0
        var i = 0, j = 0  // next unread negative, positive
        while j < positives.count {
            let value = positives[j]
            while i < negatives.count && negatives[i] < value { i += 1 }
            var equalNegatives = 0
            while i + equalNegatives < negatives.count && negatives[i + equalNegatives] == value { equalNegatives += 1 }
            var equalPositives = 0
            while j < positives.count && positives[j] == value {
                equalPositives += 1
                j += 1
            }
            u += Double(equalPositives) * (Double(i) + 0.5 * Double(equalNegatives))
        }
        return u / (Double(positives.count) * Double(negatives.count))
    }

    // MARK: - AUPRO

    /// The normalised area under the per-region-overlap (PRO) curve up to a false-positive
    /// rate of `fprLimit`, as in the MVTec AD evaluation.
    ///
    /// Every connected component (8-connectivity) of every ground-truth mask is one region.
    /// For a threshold `t` (a pixel is predicted anomalous when its score is `>= t`):
    /// PRO(t) is the mean over all regions of the fraction of the region's pixels predicted
    /// anomalous, and FPR(t) is the fraction of normal pixels (mask `false`, all images)
    /// predicted anomalous. The curve is exact: every distinct score is a threshold, and
    /// pixels with equal scores enter together (a straight segment). The area from FPR 0 to
    /// `fprLimit` is taken with the trapezoid rule, the last point interpolated linearly at
    /// exactly `fprLimit`, and divided by `fprLimit`, so a perfect detector scores 1.
    ///
    /// Memory: 8 bytes per pixel (a sort key holding the score and the region id).
    ///
    /// - Parameters:
    ///   - maps: per image, the anomaly map, `width * height` scores in row-major order.
    ///   - masks: per image, the ground-truth mask, `width * height` values.
    ///   - width: image width in pixels.
    ///   - height: image height in pixels.
    ///   - fprLimit: the integration limit, in (0, 1]; 0.3 in the MVTec AD papers.
    /// - Returns: a value in [0, 1]; `.nan` when there is no anomalous region or no normal pixel.
    public static func aupro(
        maps: [[Float]], masks: [[Bool]], width: Int, height: Int, fprLimit: Double = 0.3
    ) -> Double {
        precondition(maps.count == masks.count, "AnomalyMetrics.aupro: \(maps.count) maps but \(masks.count) masks")
        precondition(fprLimit > 0 && fprLimit <= 1, "AnomalyMetrics.aupro: fprLimit \(fprLimit) is not in (0, 1]")
        let pixels = width * height
        // Region sizes, 1-based: region 0 stands for "normal pixel".
        var regionAreas: [Int] = [0]
        var normalCount = 0
        var keys = [UInt64]()
        keys.reserveCapacity(maps.count * pixels)
        for (image, (map, mask)) in zip(maps, masks).enumerated() {
            precondition(
                map.count == pixels && mask.count == pixels,
                "AnomalyMetrics.aupro: image \(image) has \(map.count) scores and \(mask.count) mask pixels, expected \(width) x \(height) = \(pixels)")
            let (labels, count) = connectedComponents(mask, width: width, height: height)
            let offset = regionAreas.count - 1
            regionAreas.append(contentsOf: repeatElement(0, count: count))
            for p in 0..<pixels {
                precondition(!map[p].isNaN, "AnomalyMetrics.aupro: image \(image) has a NaN score at pixel \(p)")
                let region = labels[p] == 0 ? 0 : offset + Int(labels[p])
                if region == 0 { normalCount += 1 } else { regionAreas[region] += 1 }
                keys.append(UInt64(orderKey(map[p])) << 32 | UInt64(region))
            }
        }
        let regionCount = regionAreas.count - 1
        guard regionCount > 0, normalCount > 0 else { return .nan }
        precondition(regionCount < 1 << 32, "AnomalyMetrics.aupro: too many regions")
        let inverseAreas = regionAreas.map { $0 > 0 ? 1 / Double($0) : 0 }
        keys.sort()

        // Sweep from the highest score down; each group of equal scores adds one curve point.
        var area = 0.0
        var previousFPR = 0.0, previousPRO = 0.0
        var falsePositives = 0, overlapSum = 0.0
        var end = keys.count
        while end > 0 {
            let score = keys[end - 1] >> 32
            var start = end - 1
            while start > 0 && keys[start - 1] >> 32 == score { start -= 1 }
            for key in keys[start..<end] {
                let region = Int(key & 0xFFFF_FFFF)
                if region == 0 { falsePositives += 1 } else { overlapSum += inverseAreas[region] }
            }
            end = start
            let fpr = Double(falsePositives) / Double(normalCount)
            let pro = overlapSum / Double(regionCount)
            if fpr >= fprLimit {
                let proAtLimit = fpr > previousFPR
                    ? previousPRO + (pro - previousPRO) * (fprLimit - previousFPR) / (fpr - previousFPR)
                    : pro
                area += (fprLimit - previousFPR) * (previousPRO + proAtLimit) / 2
                return area / fprLimit
            }
            area += (fpr - previousFPR) * (previousPRO + pro) / 2
            previousFPR = fpr
            previousPRO = pro
        }
        // Unreachable: the last point has FPR 1 >= fprLimit.
        return area / fprLimit
    }

    /// A UInt32 whose unsigned order is the order of the (non-NaN) floats; -0 and +0 map
    /// to the same key.
    @inline(__always)
    static func orderKey(_ value: Float) -> UInt32 {
        let bits = (value == 0 ? Float(0) : value).bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    // MARK: - F1

    /// The best F1 score over all thresholds, predicting "anomalous" when `score >= threshold`.
    ///
    /// Every distinct score is tried as the threshold. When several thresholds reach the
    /// same best F1, the highest one is returned.
    ///
    /// - Parameters:
    ///   - scores: one score per sample.
    ///   - labels: `true` for anomalous samples; same count as `scores`.
    /// - Returns: the best F1 (`2TP / (2TP + FP + FN)`) and the score used as threshold;
    ///   `(.nan, .infinity)` when there is no anomalous sample (F1 undefined).
    public static func f1Max(scores: [Float], labels: [Bool]) -> (f1: Double, threshold: Float) {
        precondition(scores.count == labels.count, "AnomalyMetrics.f1Max: \(scores.count) scores but \(labels.count) labels")
        precondition(!scores.contains(where: \.isNaN), "AnomalyMetrics.f1Max: scores contain NaN")
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }
        guard positives > 0 else { return (.nan, .infinity) }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var best = (f1: -1.0, threshold: Float.infinity)
        var truePositives = 0, falsePositives = 0
        var i = 0
        while i < order.count {
            let threshold = scores[order[i]]
            while i < order.count && scores[order[i]] == threshold {
                if labels[order[i]] { truePositives += 1 } else { falsePositives += 1 }
                i += 1
            }
            let f1 = 2 * Double(truePositives) / Double(truePositives + falsePositives + positives)
            if f1 > best.f1 { best = (f1, threshold) }
        }
        return best
    }

    // MARK: - Verdicts

    /// The balanced accuracy of a threshold: the mean of the share of anomalous samples
    /// called anomalous (score at or above `threshold`) and the share of normal samples
    /// called normal. This is what a line acts on, next to the ranking that AUROC measures.
    ///
    /// - Returns: a value in [0, 1]; `.nan` when either class is empty.
    public static func balancedAccuracy(scores: [Float], labels: [Bool], threshold: Float) -> Double {
        precondition(scores.count == labels.count, "AnomalyMetrics.balancedAccuracy: \(scores.count) scores but \(labels.count) labels")
        var positives = 0, negatives = 0, flagged = 0, passed = 0
        for (score, label) in zip(scores, labels) {
            if label {
                positives += 1
                if score >= threshold { flagged += 1 }
            } else {
                negatives += 1
                if score < threshold { passed += 1 }
            }
        }
        guard positives > 0, negatives > 0 else { return .nan }
        return (Double(flagged) / Double(positives) + Double(passed) / Double(negatives)) / 2
    }

    /// The best balanced accuracy any single threshold reaches on these scores (every
    /// distinct score tried, and one above all of them), with that threshold: the ceiling
    /// for a calibrated threshold on the same scores.
    ///
    /// - Returns: `(.nan, .infinity)` when either class is empty.
    public static func bestBalancedAccuracy(scores: [Float], labels: [Bool]) -> (accuracy: Double, threshold: Float) {
        precondition(scores.count == labels.count, "AnomalyMetrics.bestBalancedAccuracy: \(scores.count) scores but \(labels.count) labels")
        precondition(!scores.contains(where: \.isNaN), "AnomalyMetrics.bestBalancedAccuracy: scores contain NaN")
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return (.nan, .infinity) }
        // Sweep thresholds from high to low: at each distinct score, everything at or
        // above it is flagged.
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var best = (accuracy: 0.5, threshold: Float.infinity)
        var flagged = 0, wronglyFlagged = 0
        var i = 0
        while i < order.count {
            let threshold = scores[order[i]]
            while i < order.count && scores[order[i]] == threshold {
                if labels[order[i]] { flagged += 1 } else { wronglyFlagged += 1 }
                i += 1
            }
            let accuracy = (Double(flagged) / Double(positives) + Double(negatives - wronglyFlagged) / Double(negatives)) / 2
            if accuracy > best.accuracy { best = (accuracy, threshold) }
        }
        return best
    }

    // MARK: - Connected components

    /// Labels the 8-connected components of a binary mask.
    ///
    /// Pixels touching by a side or a corner belong to the same component. Iterative
    /// flood fill with an explicit stack (no recursion, so any mask size is safe).
    ///
    /// - Parameters:
    ///   - mask: `width * height` values in row-major order; `true` is foreground.
    ///   - width: columns.
    ///   - height: rows.
    /// - Returns: `labels`, one per pixel: 0 for background, `1...count` for the
    ///   components, numbered in raster order of their first (top-left-most) pixel; and
    ///   the number of components.
    public static func connectedComponents(_ mask: [Bool], width: Int, height: Int) -> (labels: [Int32], count: Int) {
        precondition(width >= 0 && height >= 0, "AnomalyMetrics.connectedComponents: negative size \(width) x \(height)")
        precondition(
            mask.count == width * height,
            "AnomalyMetrics.connectedComponents: \(mask.count) mask values for \(width) x \(height)")
        var labels = [Int32](repeating: 0, count: mask.count)
        var count: Int32 = 0
        var stack = [Int]()
        for seed in 0..<mask.count where mask[seed] && labels[seed] == 0 {
            count += 1
            labels[seed] = count
            stack.append(seed)
            while let p = stack.popLast() {
                let y = p / width, x = p - y * width
                for ny in max(y - 1, 0)...min(y + 1, height - 1) {
                    for nx in max(x - 1, 0)...min(x + 1, width - 1) {
                        let q = ny * width + nx
                        if mask[q] && labels[q] == 0 {
                            labels[q] = count
                            stack.append(q)
                        }
                    }
                }
            }
        }
        return (labels, Int(count))
    }

    /// The bounding box and area of every component of a labelled mask.
    ///
    /// - Parameters:
    ///   - labels: per pixel, 0 for background or a component number `1...count`, as
    ///     returned by ``connectedComponents(_:width:height:)``.
    ///   - count: the number of components.
    ///   - width: columns of the mask.
    /// - Returns: `count` regions; element `i` describes component `i + 1`.
    public static func regions(labels: [Int32], count: Int, width: Int) -> [Region] {
        var minX = [Int](repeating: .max, count: count), minY = minX
        var maxX = [Int](repeating: -1, count: count), maxY = maxX
        var area = [Int](repeating: 0, count: count)
        for (p, label) in labels.enumerated() where label > 0 {
            let c = Int(label) - 1
            precondition(c < count, "AnomalyMetrics.regions: label \(label) exceeds count \(count)")
            let y = p / width, x = p - y * width
            minX[c] = min(minX[c], x); maxX[c] = max(maxX[c], x)
            minY[c] = min(minY[c], y); maxY[c] = max(maxY[c], y)
            area[c] += 1
        }
        return (0..<count).map {
            Region(x: minX[$0], y: minY[$0], width: maxX[$0] - minX[$0] + 1, height: maxY[$0] - minY[$0] + 1, area: area[$0])
        }
    }

    /// The 8-connected components of a mask as bounding boxes, in raster order of their
    /// first pixel.
    ///
    /// - Parameters:
    ///   - mask: `width * height` values in row-major order.
    ///   - width: columns.
    ///   - height: rows.
    public static func regions(_ mask: [Bool], width: Int, height: Int) -> [Region] {
        let (labels, count) = connectedComponents(mask, width: width, height: height)
        return regions(labels: labels, count: count, width: width)
    }
}
