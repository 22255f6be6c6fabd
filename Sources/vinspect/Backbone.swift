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

/// `vinspect backbone ...`: pretrained backbones.
struct BackboneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backbone",
        abstract: "Import pretrained backbone weights, or distil one into the compact network.",
        subcommands: [Import.self, Distill.self, Synthesize.self])

    /// `vinspect backbone import --arch NAME FILE --output FILE`.
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert a PyTorch checkpoint or safetensors file into a vinspect backbone file.",
            discussion: """
                Reads PyTorch checkpoints (zip and legacy formats) through a restricted
                unpickler that executes nothing from the file, and safetensors files.
                Names follow torchvision (resnet18), EfficientNet-PyTorch or timm
                (efficientnet-lite0, -lite1, -lite2); every tensor's shape is checked.
                The Lite variants were trained at 224 (lite0), 240 (lite1) and 260 (lite2)
                pixels. Example:
                  vinspect backbone import --arch efficientnet-lite1 \\
                    efficientnet-lite1-77cc7160.pth --output lite1.vimodel
                """)

        @Option(name: .customLong("arch"), help: "The architecture: \(BackboneArchitecture.allCases.map(\.rawValue).joined(separator: ", ")).")
        var architecture: BackboneArchitecture

        @Argument(help: "The weights file (.pth, .pt, .bin or .safetensors).")
        var weights: String

        @Option(help: "Where to write the backbone file.")
        var output: String

        func run() throws {
            try checkModelOutput(output)
            let start = monotonicSeconds()
            let network = try BackboneStore.importWeights(from: weights, architecture: architecture)
            let name = weights.split(separator: "/").last.map(String.init) ?? weights
            try BackboneStore.save(network, to: output, source: name)
            print("imported \(network.architecture): \(network.parameterCount) parameters in \(network.namedState.count) tensors "
                  + "from \(weights) -> \(output) (\(format((monotonicSeconds() - start) * 1000)) ms)")
        }
    }
}

extension BackboneCommand {
    /// `vinspect backbone distill --teacher FILE --output FILE`: the compact network's weights.
    struct Distill: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the compact network to reproduce a teacher backbone's features on generated images.",
            discussion: """
                The student is the compact network; the teacher (normally EfficientNet-Lite0, from
                `vinspect backbone import`) is only run forward. Every step draws --batch new
                procedurally generated images (textures, parts, synthetic defects; no data set is
                read) and minimises the relative squared error between the student's stride-4/8/16
                feature maps and the teacher's (carried into the student's wider channels by a fixed
                isometry), plus its pooled embedding against the teacher's projected onto its 256
                principal axes. The result is the same for the same options and teacher on any
                number of threads. The weights shipped in
                Sources/VisualInspection/Resources/compact-default.vimodel were made with
                  VINSPECT_THREADS=1 vinspect backbone distill --teacher lite0.vimodel \\
                    --output compact-default.vimodel --steps 1800 --batch 16 --image-size 128 --seed 0
                (the exact command is in the file's metadata under "distillation").
                """)

        @Option(help: "The teacher backbone file (e.g. EfficientNet-Lite0 from `vinspect backbone import`).")
        var teacher: String

        @Option(help: "Where to write the compact backbone file (rewritten at every checkpoint).")
        var output: String

        @Option(help: "Optimiser steps.") var steps: Int = 1800
        @Option(help: "Generated images per step.") var batch: Int = 16
        @Option(help: "Side of the generated images (a multiple of 32).") var imageSize: Int = 128
        @Option(help: "Seed of the images, augmentation and initialisation.") var seed: UInt64 = 0
        @Option(help: "Peak learning rate (AdamW, cosine decay).") var learningRate: Float = 2e-3
        @Option(help: "Print the mean loss every this many steps.") var logEvery: Int = 25
        @Option(help: "Save the student every this many steps (0: only at the end).") var checkpointEvery: Int = 200

        func validate() throws {
            if steps < 1 || batch < 2 { throw ValidationError("--steps must be positive and --batch at least 2 (batch norm needs a batch)") }
            if imageSize < 32 || imageSize % 32 != 0 { throw ValidationError("--image-size must be a positive multiple of 32") }
            if logEvery < 1 || checkpointEvery < 0 { throw ValidationError("--log-every must be positive and --checkpoint-every not negative") }
            if !(learningRate > 0) { throw ValidationError("--learning-rate must be positive") }
        }

        /// The command line that reproduces this run, with the files by name only.
        var reproducingCommand: String {
            func name(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
            return "vinspect backbone distill --teacher \(name(teacher)) --output \(name(output)) --steps \(steps) --batch \(batch) "
                + "--image-size \(imageSize) --seed \(seed) --learning-rate \(learningRate)"
        }

        func run() throws {
            try checkModelOutput(output)
            let teacherNetwork = try BackboneStore.load(from: teacher)
            let teacherFile = try? ModelFile(contentsOfFile: teacher)
            var options = DistillationOptions()
            options.steps = steps; options.batchSize = batch; options.imageSize = imageSize
            options.seed = seed; options.learningRate = learningRate
            let run = CompactDistillation(teacher: teacherNetwork, options: options)
            print("distilling \(teacherNetwork.architecture) (\(teacherNetwork.parameterCount) parameters) into compact "
                  + "(\(run.student.parameterCount)): \(steps) steps of \(batch) generated \(imageSize)x\(imageSize) images, seed \(seed)")
            let axesStart = monotonicSeconds()
            run.prepareTargets()
            print("targets from \(options.principalSamples) teacher runs (\(format(monotonicSeconds() - axesStart)) s): RMS "
                  + run.targetScales.map { String(format: "%.3g", $0) }.joined(separator: ", ") + " (stride 4, 8, 16, embedding)")
            let heldOut = run.heldOutBatch(count: 32)
            let initial = run.loss(student: heldOut.student, teacher: heldOut.teacher, training: false).1

            var window: [DistillationLoss] = []
            var lastSeconds = 0.0
            func describe(_ losses: [DistillationLoss]) -> String {
                func mean(_ values: [Float]) -> String { String(format: "%.4f", values.reduce(0, +) / Float(Swift.max(values.count, 1))) }
                return "loss \(mean(losses.map(\.total))) (maps \((0..<3).map { i in mean(losses.map { $0.maps[i] }) }.joined(separator: " ")), "
                    + "embedding \(mean(losses.map(\.embedding))))"
            }
            func save(stepsDone: Int) throws {
                let held = run.loss(student: heldOut.student, teacher: heldOut.teacher, training: false).1
                let teacherMeta = teacherFile?.metadata
                let record: [String: JSONValue] = [
                    "command": .string(reproducingCommand),
                    "seed": .number(Double(seed)), "steps": .number(Double(steps)), "steps_done": .number(Double(stepsDone)),
                    "batch": .number(Double(batch)), "image_size": .number(Double(imageSize)),
                    "learning_rate": .number(Double(learningRate)),
                    "teacher": .object([
                        "file": .string(teacher.split(separator: "/").last.map(String.init) ?? teacher),
                        "architecture": .string(teacherNetwork.architecture),
                        "source": teacherMeta?["source"] ?? .null,
                    ]),
                    "images": .string("SyntheticImageGenerator: procedurally generated in the run; no data set was read"),
                    "held_out_loss_initial": .number(Double(initial.total)),
                    "held_out_loss": .number(Double(held.total)),
                    "held_out_map_losses": .array(held.maps.map { .number(Double($0)) }),
                    "held_out_embedding_loss": .number(Double(held.embedding)),
                    "train_seconds": .number((lastSeconds * 10).rounded() / 10),
                    "target_rms": .array(run.targetScales.map { .number(Double($0)) }),
                ]
                try BackboneStore.save(run.exportedStudent(), to: output, source: "distilled from \(teacherNetwork.architecture)",
                                       extraMetadata: ["distillation": .object(record)])
                print("step \(stepsDone): saved \(output); held-out \(describe([held])) (initially \(format(Double(initial.total))))")
            }
            var failure: Error?
            run.train(checkpointInterval: checkpointEvery, progress: { report in
                window.append(report.loss)
                lastSeconds = report.seconds
                if report.step % logEvery == 0 || report.step == steps || report.step <= 3 {
                    let perStep = report.seconds / Double(report.step)
                    print("step \(report.step)/\(steps): \(describe(window)), lr \(String(format: "%.2e", report.learningRate)), "
                          + "\(format(perStep)) s/step, \(format(report.seconds / 60)) min, eta \(format(perStep * Double(steps - report.step) / 60)) min")
                    window.removeAll()
                    // A long run is usually logged to a file: show each line as it comes
                    // (fflush(nil) flushes every stream without touching the global `stdout`).
                    fflush(nil)
                }
            }, checkpoint: { done in
                do { try save(stepsDone: done) } catch { failure = error }
            })
            if let failure { throw failure }
        }
    }

    /// `vinspect backbone synthesize`: writes generated images to look at.
    struct Synthesize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write procedurally generated training images (what `backbone distill` learns from) as PNG files.")

        @Option(help: "The folder to write into (created if needed).") var output: String
        @Option(help: "Number of images.") var count: Int = 16
        @Option(help: "Side of the images.") var imageSize: Int = 128
        @Option(help: "Seed of the image sequence.") var seed: UInt64 = 0

        func validate() throws {
            if count < 1 || imageSize < 16 { throw ValidationError("--count must be positive and --image-size at least 16") }
        }

        func run() throws {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let generator = SyntheticImageGenerator(size: imageSize, seed: seed)
            for index in 0..<count {
                try generator.image(at: index).write(toFile: "\(output)/synthetic-\(seed)-\(index).png")
            }
            print("wrote \(count) images to \(output)")
        }
    }
}

extension BackboneArchitecture: ExpressibleByArgument {}
