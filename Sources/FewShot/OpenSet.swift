// Open-set episodes: how well "unknown" works. Each episode has N known classes and one
// more class the classifier was not shown; its queries should be rejected, the known
// ones classified.
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The result of an open-set episodic evaluation (all rates in [0, 1], means over episodes).
public struct OpenSetResult: Sendable, Codable {
    public var ways: Int, shots: Int, queries: Int, episodes: Int, seed: UInt64
    /// Known-class queries given their own class (not rejected).
    public var knownAccuracy: Double
    /// Known-class queries given their own class when rejection is switched off.
    public var knownAccuracyWithoutRejection: Double
    /// Known-class queries wrongly called unknown.
    public var knownRejected: Double
    /// Queries of the held-out class called unknown.
    public var unknownRejected: Double
    /// Half-widths of the 95 % confidence intervals of `knownAccuracy` and `unknownRejected`.
    public var knownAccuracy95: Double, unknownRejected95: Double
}

extension Episodes {
    /// Draws episodes of `ways` known classes plus one held-out class, builds a classifier
    /// from the known classes' support (rejection calibrated from that support only, by
    /// ``PrototypeClassifier/calibrateRejection(quantile:margin:)``), and measures known
    /// accuracy and the rejection of the held-out class's queries.
    ///
    /// - Parameters: as ``evaluate(_:ways:shots:queries:episodes:seed:transform:centerOnSupport:refinementSteps:scale:)``;
    ///   `embeddings` needs at least `ways + 1` classes.
    public static func evaluateOpenSet(
        _ embeddings: [(name: String, vectors: [[Float]])], ways: Int, shots: Int, queries: Int, episodes: Int,
        seed: UInt64, transform: EmbeddingTransform = EmbeddingTransform(), centerOnSupport: Bool = false, scale: Float = 5,
        rejectionQuantile: Double = 0.05, rejectionMargin: Float = 0, neighbourQuantile: Double? = nil
    ) -> OpenSetResult {
        let eligible = embeddings.filter { $0.vectors.count >= shots + queries }
        precondition(eligible.count >= ways + 1, "Episodes: \(eligible.count) classes have enough examples, \(ways + 1) needed")
        var generator = Xoshiro256(seed: seed)
        var known: [Double] = [], knownPlain: [Double] = [], knownRejected: [Double] = [], unknown: [Double] = []
        for _ in 0..<episodes {
            let chosen = Array(eligible.indices.shuffled(using: &generator).prefix(ways + 1))
            var support: [(String, [[Float]])] = [], query: [([Float], Int)] = []
            for (label, c) in chosen.enumerated() {
                let picks = eligible[c].vectors.indices.shuffled(using: &generator)
                if label < ways {
                    support.append((eligible[c].name, picks.prefix(shots).map { eligible[c].vectors[$0] }))
                    query += picks.dropFirst(shots).prefix(queries).map { (eligible[c].vectors[$0], label) }
                } else {
                    query += picks.prefix(queries).map { (eligible[c].vectors[$0], -1) }
                }
            }
            var classifier = episodeClassifier(support: support, transform: transform, centerOnSupport: centerOnSupport,
                                               scale: scale)
            if let neighbourQuantile {
                classifier.calibrateRejectionFromNeighbours(quantile: neighbourQuantile, offset: rejectionMargin)
            } else {
                classifier.calibrateRejection(quantile: rejectionQuantile, margin: rejectionMargin)
            }
            let predictions = query.map { classifier.predict($0.0) }
            var right = 0, rightPlain = 0, wronglyRejected = 0, rejected = 0, knownCount = 0, unknownCount = 0
            for (prediction, (_, label)) in zip(predictions, query) {
                if label >= 0 {
                    knownCount += 1
                    if prediction.nearest == label { rightPlain += 1 }
                    if prediction.label == nil { wronglyRejected += 1 } else if prediction.nearest == label { right += 1 }
                } else {
                    unknownCount += 1
                    if prediction.label == nil { rejected += 1 }
                }
            }
            known.append(Double(right) / Double(knownCount))
            knownPlain.append(Double(rightPlain) / Double(knownCount))
            knownRejected.append(Double(wronglyRejected) / Double(knownCount))
            unknown.append(Double(rejected) / Double(unknownCount))
        }
        func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
        func half95(_ v: [Double]) -> Double {
            let m = mean(v)
            let variance = v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(Swift.max(v.count - 1, 1))
            return 1.96 * (variance / Double(v.count)).squareRoot()
        }
        return OpenSetResult(ways: ways, shots: shots, queries: queries, episodes: episodes, seed: seed,
                             knownAccuracy: mean(known), knownAccuracyWithoutRejection: mean(knownPlain),
                             knownRejected: mean(knownRejected), unknownRejected: mean(unknown),
                             knownAccuracy95: half95(known), unknownRejected95: half95(unknown))
    }
}
