// Trains on the demo's good washers with the shipped backbone and inspects one part: what
// an integrator's first program does, built against VisualInspection as a versioned
// dependency. Exits non-zero if anything fails or if an image takes longer than a second
// (a build without the CPU flags is about 80x slower).
import Foundation
import VisualInspection

let fixtures = URL(fileURLWithPath: CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Fixtures/demo")
let goodFolder = fixtures.appendingPathComponent("train/good"), line = fixtures.appendingPathComponent("line")
let goodFiles = try FileManager.default.contentsOfDirectory(atPath: goodFolder.path).filter { $0.hasSuffix(".png") }.sorted()
let good = try goodFiles.map { try Image(contentsOfFile: goodFolder.appendingPathComponent($0).path) }
let inspector = Inspector(model: try InspectorTrainer.train(backbone: try DefaultBackbone.load(), good: good, classes: []))
let part = try FileManager.default.contentsOfDirectory(atPath: line.path).filter { $0.hasSuffix(".png") }.sorted()[0]
let result = try inspector.inspect(contentsOfFile: line.appendingPathComponent(part).path)
print("consumer: \(part): \(result.verdict.rawValue), score \(result.score), \(result.milliseconds) ms")
if result.milliseconds > 1000 { print("consumer: too slow, the CPU flags did not reach the dependency"); exit(1) }
