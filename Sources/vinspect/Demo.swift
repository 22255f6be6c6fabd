import Anomaly
import ArgumentParser
import Distillation
import Evaluation
import FewShot
import Foundation
@_spi(Engine) import ImageIO
import ModelFile
import NeuralNet
import Synthesis
import TensorCore
@_spi(Engine) import VisualInspection

/// `vinspect demo`: train on the shipped fixtures, inspect the rest, write a report and heat maps.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train on the images in Fixtures/demo, inspect the rest, write a report and heat maps.",
        discussion: """
            Runs the whole job on images that ship with vinspect (generated washers on a metal
            plate, see Fixtures/Scripts/make_demo_fixtures.py), with nothing downloaded:
              1. vinspect train --good Fixtures/demo/train/good --classes Fixtures/demo/train/defects --output DIR/model.vimodel
              2. vinspect inspect DIR/model.vimodel Fixtures/demo/line --report DIR/report.jsonl --heatmaps DIR/heatmaps
            then prints each verdict next to the truth (the file names start with it). The
            line images include a defect type the model was never shown (dent).
            """)

    @Option(help: "The folder the model, report and heat maps are written to.")
    var output: String = "vinspect-demo"

    @Option(help: "The fixtures folder (default: Fixtures/demo here, or in the source tree vinspect was built from).")
    var fixtures: String?

    @Option(help: backboneHelp)
    var backbone: String = "default"

    @Option(help: "Images inspected in parallel.")
    var jobs: Int = 1

    func run() throws {
        guard let root = fixtures ?? Demo.defaultFixtures else {
            throw ValidationError("Fixtures/demo not found here or in the source tree; run from the repository or pass --fixtures DIR")
        }
        do { try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true) } catch {
            throw ValidationError("--output \(output): cannot create the folder (\(error.localizedDescription))")
        }
        let model = output + "/model.vimodel", report = output + "/report.jsonl", heatmaps = output + "/heatmaps"
        print("== 1. train: \(root)/train/good (good parts) + \(root)/train/defects (scratch, stain, crack)")
        let train = try Train.parse(["--good", root + "/train/good", "--classes", root + "/train/defects", "--backbone", backbone,
                                     "--output", model])
        try train.run()
        print("\n== 2. inspect: \(root)/line -> \(report), \(heatmaps)/")
        let summary = try runInspection(model: model, paths: [root + "/line"], report: report, heatmaps: heatmaps, jobs: jobs,
                                        quiet: true)

        print("\n== 3. results (truth from the file name)")
        let lines = (try? String(contentsOfFile: report, encoding: .utf8))?.split(separator: "\n") ?? []
        var correct = 0, typed = 0, typedRight = 0
        print("file".padding(toLength: 22, withPad: " ", startingAt: 0) + "verdict  score  type (confidence)")
        for line in lines {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let path = object["path"] as? String, let verdict = object["verdict"] as? String else { continue }
            let name = path.split(separator: "/").last.map(String.init) ?? path
            let truth = name.split(separator: "_").first.map(String.init) ?? ""
            let expected = truth == "good" ? "ok" : "defect"
            if verdict == expected { correct += 1 }
            let score = (object["score"] as? Double).map { String(format: "%.2f", $0) } ?? "-"
            var type = ""
            if let t = object["defect_type"] as? String {
                type = t + ((object["type_confidence"] as? Double).map { String(format: " (%.2f)", $0) } ?? "")
                if truth != "good" && truth != "dent" {
                    typed += 1
                    if t == truth { typedRight += 1 }
                }
            }
            print(name.padding(toLength: 22, withPad: " ", startingAt: 0) + verdict.padding(toLength: 9, withPad: " ", startingAt: 0)
                  + score.padding(toLength: 7, withPad: " ", startingAt: 0) + type)
        }
        print("\nverdicts right: \(correct)/\(lines.count); defect types right: \(typedRight)/\(typed) of the known types found defective")
        print("model \(model), report \(report), heat maps \(heatmaps)/ (\(format(summary.seconds)) s to inspect)")
    }

    /// `Fixtures/demo` in the current folder, else in the source tree this tool was built from.
    static var defaultFixtures: String? {
        let here = "Fixtures/demo"
        if isFolder(here) { return here }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/demo").path
        return isFolder(source) ? source : nil
    }
}
