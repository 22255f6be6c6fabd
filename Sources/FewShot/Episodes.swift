// N-way K-shot episodes over precomputed embeddings, with a seeded draw, and the mean
// accuracy with its 95 % confidence interval.
import TensorCore

/// The result of an episodic evaluation.
public struct EpisodeResult: Sendable, Codable {
    public var ways: Int, shots: Int, queries: Int, episodes: Int, seed: UInt64
    /// Mean accuracy over the episodes, in [0, 1].
    public var accuracy: Double
    /// Half-width of the 95 % confidence interval (1.96 standard errors).
    public var confidence95: Double
}

/// Episodic few-shot evaluation.
public enum Episodes {
    /// The classifier of one episode: the support's classes, the transform centred on the
    /// support's mean features when asked (the support is all an episode may look at).
    static func episodeClassifier(support: [(String, [[Float]])], transform: EmbeddingTransform, centerOnSupport: Bool,
                                  scale: Float) -> PrototypeClassifier {
        var t = transform
        if centerOnSupport {
            t.center = []
            t.center = meanVector(support.flatMap(\.1).map(t.features))
        }
        var classifier = PrototypeClassifier(transform: t)
        classifier.scale = scale
        for (name, vectors) in support { classifier.add(name, embeddings: vectors) }
        return classifier
    }

    /// Draws `episodes` N-way K-shot episodes from labelled embeddings and classifies the
    /// queries with a fresh ``PrototypeClassifier`` each time.
    ///
    /// - Parameters:
    ///   - embeddings: raw embeddings per class (class name, `[M][D]`).
    ///   - ways: classes per episode.
    ///   - shots: support examples per class.
    ///   - queries: query examples per class.
    ///   - transform: embedding transform (with its optional projection head).
    ///   - centerOnSupport: replace the transform's `center` by the mean of the episode's
    ///     support features (after the power transform and the head).
    ///   - refinementSteps: soft k-means steps with the episode's queries.
    ///   - scale: the classifier's softmax inverse temperature.
    public static func evaluate(
        _ embeddings: [(name: String, vectors: [[Float]])], ways: Int, shots: Int, queries: Int, episodes: Int,
        seed: UInt64, transform: EmbeddingTransform = EmbeddingTransform(), centerOnSupport: Bool = false,
        refinementSteps: Int = 0, scale: Float = 5
    ) -> EpisodeResult {
        let eligible = embeddings.filter { $0.vectors.count >= shots + queries }
        precondition(eligible.count >= ways, "Episodes: \(eligible.count) classes have \(shots + queries) examples, \(ways) needed")
        var generator = Xoshiro256(seed: seed)
        var accuracies: [Double] = []
        for _ in 0..<episodes {
            let chosen = Array(eligible.indices.shuffled(using: &generator).prefix(ways))
            var support: [(String, [[Float]])] = [], query: [([Float], Int)] = []
            for (label, c) in chosen.enumerated() {
                let picks = eligible[c].vectors.indices.shuffled(using: &generator)
                support.append((eligible[c].name, picks.prefix(shots).map { eligible[c].vectors[$0] }))
                query += picks.dropFirst(shots).prefix(queries).map { (eligible[c].vectors[$0], label) }
            }
            let classifier = episodeClassifier(support: support, transform: transform, centerOnSupport: centerOnSupport,
                                               scale: scale)
            let predictions = classifier.predict(batch: query.map(\.0), refinementSteps: refinementSteps)
            let correct = zip(predictions, query).filter { $0.0.nearest == $0.1.1 }.count
            accuracies.append(Double(correct) / Double(query.count))
        }
        let mean = accuracies.reduce(0, +) / Double(episodes)
        let variance = accuracies.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(Swift.max(episodes - 1, 1))
        return EpisodeResult(ways: ways, shots: shots, queries: queries, episodes: episodes, seed: seed, accuracy: mean,
                             confidence95: 1.96 * (variance / Double(episodes)).squareRoot())
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
