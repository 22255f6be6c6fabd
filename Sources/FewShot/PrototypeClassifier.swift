// The prototype-network classifier: one prototype per class, the mean of its support
// embeddings; a query goes to the nearest prototype, or to "unknown" when it is far from
// all of them.
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One class of the classifier: its name, its support embeddings and their mean.
public struct PrototypeClass: Sendable, Equatable, Codable {
    /// The class name, e.g. `scratch`.
    public var name: String
    /// The support embeddings, each already transformed (see ``EmbeddingTransform``), `[K][D]`.
    public var support: [[Float]]
    /// The mean of `support`, L2-normalised.
    public var prototype: [Float]

    public init(name: String, support: [[Float]]) {
        precondition(!support.isEmpty, "PrototypeClass \(name): no support embeddings")
        self.name = name
        self.support = support
        prototype = normalizedVector(meanVector(support))
    }

    /// The number of support examples ("shots").
    public var shots: Int { support.count }
}

/// What the classifier says about one query.
public struct Prediction: Sendable, Equatable {
    /// The predicted class, or nil for "unknown".
    public var label: String?
    /// The index of the nearest class (even when the answer is "unknown").
    public var nearest: Int
    /// How sure the classifier is of the nearest class, in [0, 1]. With two or more classes:
    /// the softmax probability of the nearest class. With one class a softmax would always
    /// say 1, so the similarity is measured against the "unknown" boundary instead (see
    /// ``PrototypeClassifier/singleClassConfidence(similarity:)``): 0.5 on the rejection
    /// threshold, below 0.5 exactly when the answer is "unknown", 0.95 for a query as close
    /// as the class's own examples typically are.
    public var confidence: Float
    /// Cosine similarity to the nearest prototype.
    public var similarity: Float
    /// Softmax probabilities of all classes, in class order (`[1]` with one class).
    public var probabilities: [Float]
}

/// How raw backbone embeddings are turned into the vectors the classifier compares:
/// power transform, then the optional projection head, then centring, then L2
/// normalisation.
public struct EmbeddingTransform: Sendable, Equatable, Codable {
    /// Exponent applied to each feature (sign kept) before normalisation; values below 1
    /// make pooled ReLU features closer to Gaussian, which nearest-mean classifiers prefer.
    /// The default 0.2 was the best of 0.2-1 on NEU-CLS episodes (README). 1 leaves them alone.
    /// Ignored when a ``head`` is set: the head's own ``ProjectionHead/power`` is used,
    /// because the head was trained on features transformed with it.
    public var power: Float = 0.2
    /// A vector subtracted after the power transform and the head (e.g. the mean of a base
    /// data set, or of the support set), before L2 normalisation. Empty: none.
    public var center: [Float] = []
    /// A learned projection applied after the power transform; nil: none (the classifier
    /// then behaves exactly as without heads).
    public var head: ProjectionHead?

    public init(power: Float = 0.2, center: [Float] = [], head: ProjectionHead? = nil) {
        self.power = power
        self.center = center
        self.head = head
    }

    /// The exponent actually applied: the head's when there is one.
    public var effectivePower: Float { head?.power ?? power }

    /// The power-transformed and projected vector, before centring and normalisation
    /// (what ``center`` is computed from).
    public func features(_ raw: [Float]) -> [Float] {
        let v = powerTransformed(raw, effectivePower)
        return head.map { $0.project(v) } ?? v
    }

    /// The transformed, L2-normalised vector.
    public func apply(_ raw: [Float]) -> [Float] {
        var v = features(raw)
        if !center.isEmpty {
            precondition(center.count == v.count, "EmbeddingTransform: centre of \(center.count) for \(v.count) features")
            for i in v.indices { v[i] -= center[i] }
        }
        return normalizedVector(v)
    }
}

/// `sign(x) |x|^power` element-wise (the vector itself for power 1).
public func powerTransformed(_ raw: [Float], _ power: Float) -> [Float] {
    power == 1 ? raw : raw.map { $0 >= 0 ? powf($0, power) : -powf(-$0, power) }
}

/// A few-shot classifier over named classes.
///
/// Similarities are cosines between the transformed query and the class prototypes;
/// probabilities are a softmax over `similarity * scale` (the inverse temperature). A
/// query whose best similarity is below ``rejectionThreshold`` is "unknown". With a single
/// class the confidence comes from the similarity relative to that threshold instead (see
/// ``singleClassConfidence(similarity:)``).
///
/// Adding a class or more shots to one changes nothing else: a prototype is only the mean
/// of its own class's embeddings.
public struct PrototypeClassifier: Sendable, Equatable, Codable {
    public private(set) var classes: [PrototypeClass] = []
    public var transform: EmbeddingTransform
    /// Softmax inverse temperature applied to cosine similarities (5 was the best of 3-40
    /// for soft k-means refinement on NEU-CLS episodes).
    public var scale: Float = 5
    /// Best-prototype similarity below which a query is "unknown"; nil rejects nothing.
    public var rejectionThreshold: Float?

    public init(transform: EmbeddingTransform = EmbeddingTransform()) {
        self.transform = transform
    }

    /// Rebuilds a classifier from its parts (e.g. read back from a model file).
    ///
    /// - Parameters:
    ///   - classes: the classes with their support embeddings, already transformed.
    ///   - transform: the transform those embeddings went through.
    ///   - scale: the softmax inverse temperature.
    ///   - rejectionThreshold: the "unknown" similarity floor, if any.
    public init(classes: [PrototypeClass], transform: EmbeddingTransform, scale: Float, rejectionThreshold: Float?) {
        self.classes = classes
        self.transform = transform
        self.scale = scale
        self.rejectionThreshold = rejectionThreshold
    }

    /// The class names, in order.
    public var classNames: [String] { classes.map(\.name) }

    /// Adds a class from raw embeddings, or adds shots to the class of that name.
    ///
    /// An embedding that repeats one the class already has, or one earlier in the same
    /// call (the same image given again), is skipped: a copy adds nothing to the prototype,
    /// but leave-one-out calibration would find it at similarity 1 to its twin and put the
    /// "unknown" threshold at 1 (see ``isDuplicate(_:_:)``).
    ///
    /// - Returns: how many embeddings were added (the others were copies).
    @discardableResult
    public mutating func add(_ name: String, embeddings: [[Float]]) -> Int {
        let index = classes.firstIndex { $0.name == name }
        var support = index.map { classes[$0].support } ?? []
        let before = support.count
        for v in embeddings.map(transform.apply) where !support.contains(where: { Self.isDuplicate($0, v) }) {
            support.append(v)
        }
        if let index {
            // Unchanged when everything was a copy, so that nothing is recomputed.
            if support.count > before { classes[index] = PrototypeClass(name: name, support: support) }
        } else {
            classes.append(PrototypeClass(name: name, support: support))
        }
        return support.count - before
    }

    /// Whether two transformed embeddings are the same example: within 1e-4 of each other
    /// (Euclidean distance of the normalised vectors). The same image embedded again gives 0
    /// up to rounding (measured: exactly 0 with the compact backbone, alone or in a batch of
    /// 16), while the closest two of 16 synthetic test parts that differ only by texture
    /// phase and noise were 0.07 apart.
    public static func isDuplicate(_ a: [Float], _ b: [Float]) -> Bool {
        var squared: Float = 0
        for i in a.indices {
            let d = a[i] - b[i]
            squared += d * d
        }
        return squared <= 1e-8
    }

    /// Removes a class.
    public mutating func remove(_ name: String) { classes.removeAll { $0.name == name } }

    /// Classifies one raw embedding.
    public func predict(_ embedding: [Float]) -> Prediction {
        predict(transformed: transform.apply(embedding), prototypes: classes.map(\.prototype))
    }

    func predict(transformed q: [Float], prototypes: [[Float]]) -> Prediction {
        precondition(!prototypes.isEmpty, "PrototypeClassifier: no classes")
        let similarities = prototypes.map { dot($0, q) }
        let best = similarities.indices.max { similarities[$0] < similarities[$1] }!
        let top = similarities[best]
        let exps = similarities.map { expf(($0 - top) * scale) }
        let total = exps.reduce(0, +)
        let probabilities = exps.map { $0 / total }
        let rejected = rejectionThreshold.map { top < $0 } ?? false
        let confidence = prototypes.count == 1 ? singleClassConfidence(similarity: top) : probabilities[best]
        return Prediction(label: rejected ? nil : classes.isEmpty ? nil : classes[best].name, nearest: best,
                          confidence: confidence, similarity: top, probabilities: probabilities)
    }

    /// The confidence of a lone class for a query at cosine `similarity` to its prototype.
    ///
    /// A softmax over one class is 1 for every query, so the class is weighed against the
    /// "unknown" boundary instead, as a two-way softmax between the class and a rival at the
    /// rejection threshold `t`:
    ///
    ///     confidence = 1 / (1 + exp(-k (similarity - t))),   k = ln 19 / max(m - t, 0.001)
    ///
    /// where `m` is the mean similarity of the class's own examples to its prototype (1 for a
    /// single example, which is its own prototype). So the confidence is 0.5 on the
    /// threshold, below 0.5 exactly where the answer is "unknown", 0.95 for a query as close
    /// as the class's own examples are on average, and falls towards 0 the further a query
    /// is below the threshold. (The floor on `m - t` only guards against a threshold set at
    /// or above `m` by hand.) Without a rejection threshold (one example of one class:
    /// nothing to calibrate it from) there is no boundary to measure against, and the
    /// confidence is the similarity itself, clamped to [0, 1].
    ///
    /// With two or more classes ``Prediction/confidence`` is the softmax probability instead.
    public func singleClassConfidence(similarity: Float) -> Float {
        guard let t = rejectionThreshold, let only = classes.first else { return Swift.min(1, Swift.max(0, similarity)) }
        let typical = only.support.reduce(0) { $0 + dot($1, only.prototype) } / Float(only.shots)
        let k = logf(19) / Swift.max(typical - t, 0.001)
        return 1 / (1 + expf(-k * (similarity - t)))
    }

    /// Classifies a batch, optionally refining the prototypes with the batch itself by soft
    /// k-means (the semi-supervised extension of prototypical networks): each prototype
    /// moves towards the queries weighted by their probability of belonging to it.
    ///
    /// - Parameter refinementSteps: soft k-means iterations (0: plain nearest prototype).
    public func predict(batch embeddings: [[Float]], refinementSteps: Int = 0) -> [Prediction] {
        let queries = embeddings.map(transform.apply)
        var prototypes = classes.map(\.prototype)
        for _ in 0..<refinementSteps {
            let soft = queries.map { predict(transformed: $0, prototypes: prototypes).probabilities }
            prototypes = classes.indices.map { c in
                var sum = classes[c].support.reduce([Float](repeating: 0, count: queries.first?.count ?? 0)) { vectorSum($0, $1) }
                var weight = Float(classes[c].shots)
                for (q, p) in zip(queries, soft) {
                    sum = vectorSum(sum, q.map { $0 * p[c] })
                    weight += p[c]
                }
                return normalizedVector(sum.map { $0 / weight })
            }
        }
        return queries.map { predict(transformed: $0, prototypes: prototypes) }
    }

    /// Leave-one-out similarities of each support example to its own class's prototype
    /// computed without it (classes with one shot give none). Copies of an example (support
    /// sets written before ``add(_:embeddings:)`` skipped them) count once: left out, a
    /// copy's twin would still be there at similarity 1.
    public var leaveOneOutSimilarities: [Float] {
        classes.flatMap { c -> [Float] in
            let support = distinct(c.support)
            guard support.count > 1 else { return [] }
            let total = support.reduce([Float](repeating: 0, count: support[0].count)) { vectorSum($0, $1) }
            return support.map { s in dot(normalizedVector(zip(total, s).map { $0 - $1 }), s) }
        }
    }

    /// The similarity of each support example to the nearest prototype of another class
    /// (for one-shot classes the example is its own prototype). A query no closer to its
    /// nearest prototype than support examples are to neighbouring classes looks like
    /// none of the classes.
    public var nearestOtherClassSimilarities: [Float] {
        let prototypes = classes.map(\.prototype)
        guard prototypes.count >= 2 else { return [] }
        return classes.indices.flatMap { c in
            distinct(classes[c].support).map { s in
                prototypes.indices.filter { $0 != c }.map { dot(prototypes[$0], s) }.max()!
            }
        }
    }

    /// Sets ``rejectionThreshold`` to the `quantile` of
    /// ``nearestOtherClassSimilarities``, shifted by `offset` (nil threshold with one class).
    public mutating func calibrateRejectionFromNeighbours(quantile: Double = 0.5, offset: Float = 0) {
        let sims = nearestOtherClassSimilarities.sorted()
        guard !sims.isEmpty else {
            rejectionThreshold = nil
            return
        }
        let index = Swift.min(sims.count - 1, Swift.max(0, Int((Double(sims.count - 1) * quantile).rounded())))
        rejectionThreshold = sims[index] + offset
    }

    /// Sets ``rejectionThreshold`` from the support set itself: the `quantile` of the
    /// leave-one-out similarities of the support examples to their own prototypes (each
    /// computed without the example), minus `margin` times their spread below the mean.
    /// With a single shot per class there is nothing to leave out, and the median
    /// similarity of the support examples to the nearest other class is used instead
    /// (``calibrateRejectionFromNeighbours(quantile:offset:)``).
    ///
    /// The defaults (quantile 0.05, margin 0) were chosen on NEU-CLS open-set episodes
    /// (seed 0): 5-way 5-shot rejects ~4 % of known queries and ~27 % of an unseen class's
    /// (README, "unknown").
    public mutating func calibrateRejection(quantile: Double = 0.05, margin: Float = 0) {
        let own = leaveOneOutSimilarities.sorted()
        if own.count >= 2 {
            let low = own[Swift.min(own.count - 1, Int(Double(own.count) * quantile))]
            let mean = own.reduce(0, +) / Float(own.count)
            rejectionThreshold = low - margin * Swift.max(mean - low, 0.02)
        } else {
            calibrateRejectionFromNeighbours()
        }
    }
}

// MARK: - Vector helpers

/// The vectors without copies (``PrototypeClassifier/isDuplicate(_:_:)``), first ones kept, in order.
func distinct(_ vectors: [[Float]]) -> [[Float]] {
    var kept: [[Float]] = []
    for v in vectors where !kept.contains(where: { PrototypeClassifier.isDuplicate($0, v) }) { kept.append(v) }
    return kept
}

func dot(_ a: [Float], _ b: [Float]) -> Float {
    var s: Float = 0
    for i in a.indices { s += a[i] * b[i] }
    return s
}

func vectorSum(_ a: [Float], _ b: [Float]) -> [Float] { zip(a, b).map { $0 + $1 } }

func meanVector(_ vectors: [[Float]]) -> [Float] {
    var sum = [Float](repeating: 0, count: vectors[0].count)
    for v in vectors { for i in v.indices { sum[i] += v[i] } }
    return sum.map { $0 / Float(vectors.count) }
}

/// The vector divided by its Euclidean norm (unchanged if zero).
public func normalizedVector(_ v: [Float]) -> [Float] {
    let norm = dot(v, v).squareRoot()
    return norm > 0 ? v.map { $0 / norm } : v
}
