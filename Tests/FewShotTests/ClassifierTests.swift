import FewShot
import TensorCore
import Testing

/// Synthetic embeddings: `classes` well-separated clusters in `dimension` dimensions,
/// non-negative like pooled ReLU features.
func clusters(_ classes: Int, perClass: Int, dimension: Int = 32, spread: Float = 0.3, seed: UInt64) -> [(name: String, vectors: [[Float]])] {
    var rng = Xoshiro256(seed: seed)
    return (0..<classes).map { c in
        let centre = (0..<dimension).map { _ in Float.random(in: 0..<2, using: &rng) }
        let vectors = (0..<perClass).map { _ in centre.map { max(0, $0 + spread * rng.nextStandardNormal()) } }
        return ("class\(c)", vectors)
    }
}

@Test func predictionDoesNotDependOnSupportOrder() {
    let data = clusters(4, perClass: 6, seed: 1)
    var a = PrototypeClassifier(), b = PrototypeClassifier()
    for c in data { a.add(c.name, embeddings: c.vectors) }
    for c in data.reversed() { b.add(c.name, embeddings: c.vectors.reversed()) }
    let probe = clusters(4, perClass: 3, seed: 2).flatMap(\.vectors)
    #expect(probe.map { a.predict($0).label } == probe.map { b.predict($0).label })
    for (pa, pb) in zip(probe.map { a.predict($0) }, probe.map { b.predict($0) }) {
        #expect(abs(pa.similarity - pb.similarity) < 1e-5)
    }
}

@Test func aSupportExampleIsClassifiedAsItsOwnClass() {
    let data = clusters(5, perClass: 3, seed: 3)
    var classifier = PrototypeClassifier()
    for c in data { classifier.add(c.name, embeddings: c.vectors) }
    for c in data { for v in c.vectors { #expect(classifier.predict(v).label == c.name) } }
}

@Test func addingAClassLeavesTheOthersUntouched() {
    let data = clusters(4, perClass: 5, seed: 4)
    var classifier = PrototypeClassifier()
    for c in data.prefix(3) { classifier.add(c.name, embeddings: c.vectors) }
    let before = classifier.classes
    classifier.add(data[3].name, embeddings: data[3].vectors)
    #expect(Array(classifier.classes.prefix(3)) == before)
    #expect(classifier.classNames == data.map(\.name))
    // More shots for one class change only that class (new draws from the same cluster:
    // the first five of the seven are the ones already there, and copies are skipped).
    classifier.add(data[0].name, embeddings: Array(clusters(4, perClass: 7, seed: 4)[0].vectors.suffix(2)))
    #expect(classifier.classes[0].shots == 7)
    #expect(classifier.classes[1] == before[1] && classifier.classes[2] == before[2])
}

@Test func farQueriesAreUnknownAfterCalibration() {
    let data = clusters(4, perClass: 8, seed: 5)
    let heldOut = clusters(7, perClass: 8, seed: 6)[6]  // a type the classifier never saw
    var classifier = PrototypeClassifier()
    for c in data { classifier.add(c.name, embeddings: c.vectors) }
    classifier.calibrateRejection()
    #expect(classifier.rejectionThreshold != nil)
    let known = clusters(4, perClass: 8, seed: 5).flatMap(\.vectors)
    let knownAccepted = known.filter { classifier.predict($0).label != nil }.count
    let unknownRejected = heldOut.vectors.filter { classifier.predict($0).label == nil }.count
    #expect(Double(knownAccepted) / Double(known.count) >= 0.9)
    #expect(Double(unknownRejected) / Double(heldOut.vectors.count) >= 0.75, "rejected \(unknownRejected) of \(heldOut.vectors.count)")
}

@Test func episodesOnSeparableClustersAreAccurateAndReproducible() {
    // Gaussian clusters need no power transform (it is for pooled ReLU features).
    let data = clusters(8, perClass: 30, spread: 0.6, seed: 7)
    let linear = EmbeddingTransform(power: 1)
    let a = Episodes.evaluate(data, ways: 5, shots: 1, queries: 10, episodes: 100, seed: 3, transform: linear)
    let b = Episodes.evaluate(data, ways: 5, shots: 1, queries: 10, episodes: 100, seed: 3, transform: linear)
    #expect(a.accuracy == b.accuracy)
    #expect(a.accuracy > 0.8)
    let five = Episodes.evaluate(data, ways: 5, shots: 5, queries: 10, episodes: 100, seed: 3, transform: linear)
    #expect(five.accuracy >= a.accuracy)
    #expect(five.confidence95 > 0 && five.confidence95 < 0.05)
}

@Test func softKMeansRefinementHelpsWhenShotsAreNoisy() {
    let data = clusters(5, perClass: 40, spread: 1.0, seed: 8)
    let plain = Episodes.evaluate(data, ways: 5, shots: 1, queries: 15, episodes: 200, seed: 1)
    let refined = Episodes.evaluate(data, ways: 5, shots: 1, queries: 15, episodes: 200, seed: 1, refinementSteps: 3)
    #expect(refined.accuracy >= plain.accuracy - 0.01, "refined \(refined.accuracy) vs plain \(plain.accuracy)")
}

@Test func openSetEpisodesRejectTheUnseenClassMoreThanTheKnownOnes() {
    // Tight clusters: an unseen class is far from every prototype, a known query is not.
    let data = clusters(7, perClass: 25, spread: 0.15, seed: 11)
    for shots in [1, 5] {
        let result = Episodes.evaluateOpenSet(data, ways: 5, shots: shots, queries: 10, episodes: 40, seed: 3)
        #expect(result.knownAccuracyWithoutRejection > 0.9)
        #expect(result.unknownRejected > result.knownRejected + 0.3, "shots \(shots): \(result)")
        #expect(result.knownAccuracy <= result.knownAccuracyWithoutRejection)
    }
}

@Test func aSingleClassGivesAConfidenceThatFallsWithDistance() throws {
    // One known type: a softmax over one class is always 1, whatever the query.
    // Tight clusters: the other cluster's queries are far from this class.
    let data = clusters(2, perClass: 16, spread: 0.15, seed: 12)
    var classifier = PrototypeClassifier()
    classifier.add(data[0].name, embeddings: Array(data[0].vectors.prefix(8)))
    classifier.calibrateRejection()
    let threshold = try #require(classifier.rejectionThreshold)
    let known = data[0].vectors.dropFirst(8).map { classifier.predict($0) }
    let far = data[1].vectors.map { classifier.predict($0) }
    let knownConfidences = known.map(\.confidence).sorted()
    #expect(knownConfidences[knownConfidences.count / 2] > 0.7, "known \(knownConfidences)")
    for prediction in far {
        #expect(prediction.label == nil && prediction.similarity < threshold)
        #expect(prediction.confidence < 0.5, "far query: similarity \(prediction.similarity), confidence \(prediction.confidence)")
    }
    // The confidence follows the similarity, and below 0.5 is exactly "unknown".
    let all = (known + far).sorted { $0.similarity < $1.similarity }
    #expect(zip(all, all.dropFirst()).allSatisfy { $0.confidence <= $1.confidence })
    #expect(all.allSatisfy { ($0.label == nil) == ($0.confidence < 0.5) })
}

@Test func addingTheSameExamplesTwiceChangesNothing() {
    let data = clusters(2, perClass: 5, seed: 13)
    var once = PrototypeClassifier()
    for c in data { once.add(c.name, embeddings: c.vectors) }
    once.calibrateRejection()
    var twice = once
    twice.add(data[0].name, embeddings: data[0].vectors)
    #expect(twice == once)
    twice.calibrateRejection()
    #expect(twice.rejectionThreshold == once.rejectionThreshold)
    // One example given twice is still one shot: leave-one-out on the copy would find
    // similarity 1 and call every other query unknown.
    var single = PrototypeClassifier()
    single.add("a", embeddings: [data[0].vectors[0]])
    single.add("a", embeddings: [data[0].vectors[0], data[0].vectors[0]])
    #expect(single.classes[0].shots == 1)
    single.calibrateRejection()
    #expect(data[0].vectors.allSatisfy { single.predict($0).label == "a" })
    // Support sets that already hold copies (older model files) calibrate as without them.
    let copies = once.classes.map { PrototypeClass(name: $0.name, support: $0.support + $0.support.prefix(2)) }
    var read = PrototypeClassifier(classes: copies, transform: once.transform, scale: once.scale, rejectionThreshold: nil)
    read.calibrateRejection()
    #expect(read.rejectionThreshold == once.rejectionThreshold)
}
