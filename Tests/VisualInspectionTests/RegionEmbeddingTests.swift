import Anomaly
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
import Testing
@_spi(Engine) import VisualInspection

@Test func regionWeightsSitOnTheAnomalousCellsAndAFlatMapHasNone() throws {
    // A 64 x 64 map, flat but for a bright 8 x 8 block at (40, 16).
    var values = [Float](repeating: 1, count: 64 * 64)
    for y in 16..<24 { for x in 40..<48 { values[y * 64 + x] = 5 } }
    let weights = try #require(regionWeights(AnomalyMap(width: 64, height: 64, values: values), gridWidth: 8, gridHeight: 8))
    #expect(abs(weights.reduce(0, +) - 1) < 1e-5)
    // Grid cells of 8 x 8 pixels: the block is cell (5, 2).
    #expect(weights[2 * 8 + 5] > 0.99, "\(weights)")
    #expect(regionWeights(AnomalyMap(width: 64, height: 64, values: [Float](repeating: 3, count: 64 * 64)), gridWidth: 8, gridHeight: 8) == nil)
}

/// A 64 x 64 grey plate with strong stripes, upright or diagonal, of period 6 or 10 at a
/// random phase (what differs most between images is the plate, not the defect) and, for a defect, a small mark at a random place:
/// a bright 6 x 6 dot (`dot`) or a dark 2 x 12 dash (`dash`).
func stripedPlate(seed: UInt64, mark: String? = nil) -> Image {
    var rng = Xoshiro256(seed: seed)
    let period = rng.next() % 2 == 0 ? 6.0 : 10.0, phase = Double(rng.next() % 100) / 10, diagonal = rng.next() % 2 == 0
    let mx = 12 + Int(rng.next() % 36), my = 12 + Int(rng.next() % 36)
    var pixels = [UInt8](repeating: 0, count: 64 * 64)
    for y in 0..<64 {
        for x in 0..<64 {
            let t = diagonal ? Double(x + y) : Double(x)
            var v = 120 + 50 * sin(t * 2 * .pi / period + phase) + Double(rng.nextStandardNormal()) * 4
            if mark == "dot" && abs(x - mx) < 3 && abs(y - my) < 3 { v = 250 }
            if mark == "dash" && abs(x - mx) < 6 && abs(y - my) < 1 { v = 5 }
            pixels[y * 64 + x] = UInt8(max(0, min(255, v)))
        }
    }
    return Image(width: 64, height: 64, channels: 1, pixels: pixels)
}

@Test(.timeLimit(.minutes(3)))
func theRegionEmbeddingTypesSmallDefectsOnBusyPartsAndNeedsGoodImages() throws {
    let backbone = BackboneArchitecture.compact.make(seed: 5)
    let good = (0..<12).map { stripedPlate(seed: UInt64($0)) }
    var options = TrainingOptions()
    options.scorer.imageSize = 64
    options.scorer.features = PatchFeatureOptions(layers: [0, 1], aggregation: 3)
    let model = try InspectorTrainer.train(backbone: backbone, good: good, classes: [], options: options)
    let anomaly = try #require(model.anomaly)
    let frozen = backbone.frozen()
    func examples(_ name: String, _ seeds: Range<Int>) -> [Tensor] {
        seeds.map { model.preprocessing.tensor(stripedPlate(seed: UInt64($0) + (name == "dot" ? 0 : 500), mark: name)) }
    }
    // Nearest-prototype typing from 3 examples per type, 20 queries per type.
    func accuracy(_ source: EmbeddingSource) -> Double {
        var classifier = PrototypeClassifier()
        for name in ["dot", "dash"] {
            classifier.add(name, embeddings: embeddings(of: examples(name, 100..<103), backbone: frozen, source: source, anomaly: anomaly))
        }
        var right = 0
        for (label, name) in ["dot", "dash"].enumerated() {
            for vector in embeddings(of: examples(name, 200..<220), backbone: frozen, source: source, anomaly: anomaly)
            where classifier.predict(vector).nearest == label { right += 1 }
        }
        return Double(right) / 40
    }
    let (region, multi) = (accuracy(.region), accuracy(.multi))
    print("dot/dash typing on striped plates: region \(region), multi \(multi)")
    #expect(region > multi && region >= 0.75, "region \(region), multi \(multi)")
    // Without good images there is no scorer to find the region.
    options.embedding = .region
    let classes = ["dot", "dash"].map { LabelledImages(name: $0, images: [stripedPlate(seed: 1, mark: $0)]) }
    #expect(throws: InspectionModelError.self) {
        try InspectorTrainer.train(backbone: backbone, good: [], classes: classes, options: options)
    }
}
