import FewShot
import Foundation
import ModelFile
import TensorCore
import Testing

/// Synthetic base and novel classes that share a nuisance: every class mean lies in a
/// low-dimensional "signal" subspace, but each example also carries large random values in
/// "nuisance" features that are shared by no class. A nearest-prototype classifier on the
/// raw vectors is distracted by the nuisance; a head trained on base classes can learn to
/// weight it down, and that transfers to novel classes drawn the same way.
func nuisanceClasses(_ classes: Int, perClass: Int, seed: UInt64) -> [(name: String, vectors: [[Float]])] {
    let (signal, nuisance) = (8, 24)
    var rng = Xoshiro256(seed: seed)
    return (0..<classes).map { c in
        let centre = (0..<signal).map { _ in rng.nextStandardNormal() }
        let vectors = (0..<perClass).map { _ in
            centre.map { $0 + 0.35 * rng.nextStandardNormal() } + (0..<nuisance).map { _ in 1.2 * rng.nextStandardNormal() }
        }
        return ("class\(c)", vectors)
    }
}

func baseClasses(_ data: [(name: String, vectors: [[Float]])]) -> [BaseClass] {
    data.map { BaseClass(name: $0.name, images: $0.vectors.map { [$0] }) }
}

func trainingOptions(episodes: Int = 150, rank: Int = 4) -> HeadTrainingOptions {
    var options = HeadTrainingOptions()
    options.ways = 5; options.shots = 2; options.queries = 5; options.episodes = episodes
    options.rank = rank; options.power = 1; options.learningRate = 0.02; options.seed = 3
    return options
}

@Test func anUntrainedResidualHeadIsTheIdentity() {
    var rng = Xoshiro256(seed: 1)
    let head = ProjectionHead.identity(dimension: 12, rank: 3, power: 0.5, using: &rng)
    let x = (0..<12).map { _ in rng.nextStandardNormal() }
    #expect(head.project(x) == x)
    let data = clusters(4, perClass: 5, dimension: 12, seed: 2)
    var plain = PrototypeClassifier(transform: EmbeddingTransform(power: 0.5))
    var headed = PrototypeClassifier(transform: EmbeddingTransform(power: 0.9, head: head))  // the head's power wins
    for c in data { plain.add(c.name, embeddings: c.vectors); headed.add(c.name, embeddings: c.vectors) }
    for v in data.flatMap(\.vectors) { #expect(abs(plain.predict(v).similarity - headed.predict(v).similarity) < 1e-6) }
}

@Test func headTrainedOnBaseClassesHelpsOnHeldOutClasses() {
    let base = nuisanceClasses(12, perClass: 20, seed: 10)
    let novel = nuisanceClasses(6, perClass: 20, seed: 11)  // other centres: classes the head never saw
    var rng = Xoshiro256(seed: 0)
    let identity = ProjectionHead.identity(dimension: 32, rank: 4, power: 1, using: &rng)
    let trained = HeadTrainer.train(baseClasses(base), options: trainingOptions())
    let evaluate = { (head: ProjectionHead) in
        Episodes.evaluate(novel, ways: 5, shots: 1, queries: 10, episodes: 200, seed: 5,
                          transform: EmbeddingTransform(power: 1, head: head), centerOnSupport: true).accuracy
    }
    let before = evaluate(identity), after = evaluate(trained)
    #expect(after > before + 0.2, "held-out accuracy with the identity \(before), trained \(after)")
}

@Test(arguments: [true, false])
func savedHeadsProjectIdentically(residual: Bool) throws {
    let base = nuisanceClasses(8, perClass: 10, seed: 12)
    var options = trainingOptions(episodes: 20, rank: 5)
    options.residual = residual
    options.power = 0.5
    let head = HeadTrainer.train(baseClasses(base.map { ($0.name, $0.vectors.map { $0.map(abs) }) }), options: options)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("head-\(residual)-\(UUID().uuidString).vimodel").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try head.save(to: path, extra: ["trained_on": .array([.string("synthetic")])])
    let (loaded, metadata) = try ProjectionHead.load(from: path)
    #expect(loaded == head)
    #expect(metadata["trained_on"] == .array([.string("synthetic")]))
    #expect(loaded.outputDimension == (residual ? 32 : 5))
    for v in nuisanceClasses(2, perClass: 3, seed: 13).flatMap(\.vectors) {
        #expect(loaded.project(v) == head.project(v))
    }
}

@Test func aFileThatIsNotAHeadGivesAnErrorNamingIt() throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-head-\(UUID().uuidString).vimodel").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try ModelFile(metadata: ["kind": .string(ProjectionHead.kind), "head": .object(["form": .string("residual"),
        "input_dimension": .number(4), "rank": .number(2), "power": .number(1)])],
                  tensors: [NamedTensor(name: "head.down.weight", shape: [2, 3], scalars: [Float](repeating: 0, count: 6))])
        .write(toFile: path)
    #expect {
        _ = try ProjectionHead.load(from: path)
    } throws: { error in
        "\(error)".contains(path) && "\(error)".contains("head.down.weight")
    }
}

@Test func classifierWithAHeadDoesNotDependOnSupportOrder() {
    let base = nuisanceClasses(8, perClass: 10, seed: 14)
    let head = HeadTrainer.train(baseClasses(base), options: trainingOptions(episodes: 30))
    let data = nuisanceClasses(4, perClass: 6, seed: 15)
    let transform = EmbeddingTransform(power: 1, head: head)
    var a = PrototypeClassifier(transform: transform), b = PrototypeClassifier(transform: transform)
    for c in data { a.add(c.name, embeddings: c.vectors) }
    for c in data.reversed() { b.add(c.name, embeddings: c.vectors.reversed()) }
    let probe = nuisanceClasses(4, perClass: 3, seed: 16).flatMap(\.vectors)
    #expect(probe.map { a.predict($0).label } == probe.map { b.predict($0).label })
    for (pa, pb) in zip(probe.map { a.predict($0) }, probe.map { b.predict($0) }) {
        #expect(abs(pa.similarity - pb.similarity) < 1e-5)
    }
}

@Test func trainingIsReproducible() {
    let base = baseClasses(nuisanceClasses(8, perClass: 10, seed: 17))
    let options = trainingOptions(episodes: 15)
    #expect(HeadTrainer.train(base, options: options) == HeadTrainer.train(base, options: options))
}
