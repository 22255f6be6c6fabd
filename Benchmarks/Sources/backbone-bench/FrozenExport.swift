// Writes a frozen network (`FrozenBackbone`) to one safetensors file: the weights in our
// layout and a JSON description of the layers in the header metadata, which
// Scripts/onnx_frozen.py turns into an ONNX graph. The format is documented there.
import Foundation
import NeuralNet
import TensorCore

enum FrozenExport {
    static let format = "vinspect-frozen/1"

    /// Writes `network` for an input of `height` x `width` x `channels` (paddings are resolved
    /// for that size) to `path`.
    static func write(_ network: FrozenBackbone, height: Int, width: Int, channels: Int = 3, to path: String) throws {
        var tensors: [(String, Tensor)] = []
        var size = (height, width)

        func activation(_ a: Activation) -> [String: Any] {
            switch a {
            case .none: return ["activation": "none"]
            case .relu: return ["activation": "relu"]
            case .relu6: return ["activation": "relu6"]
            case .silu: return ["activation": "silu"]
            case .leakyRelu(let slope): return ["activation": "leaky-relu", "slope": Double(slope)]
            }
        }
        /// Describes one convolution reading a map of `input` size; returns the description
        /// and the output size.
        func conv(_ c: FusedConv, _ name: String, input: (Int, Int)) -> ([String: Any], (Int, Int)) {
            let (kh, kw) = (c.weight.shape[0], c.weight.shape[1])
            let (t, l, b, r) = c.padding.resolve(height: input.0, width: input.1, kernel: (kh, kw), stride: c.stride,
                                                 dilation: c.dilation)
            let oh = (input.0 + t + b - c.dilation.0 * (kh - 1) - 1) / c.stride.0 + 1
            let ow = (input.1 + l + r - c.dilation.1 * (kw - 1) - 1) / c.stride.1 + 1
            tensors.append((name + ".weight", c.weight))
            tensors.append((name + ".bias", c.bias))
            var d: [String: Any] = ["weight": name + ".weight", "bias": name + ".bias", "kernel": [kh, kw],
                                    "stride": [c.stride.0, c.stride.1], "pads": [t, l, b, r],
                                    "dilation": [c.dilation.0, c.dilation.1], "groups": c.groups]
            d.merge(activation(c.activation)) { $1 }
            return (d, (oh, ow))
        }

        var layers: [[String: Any]] = []
        for (index, layer) in network.layers.enumerated() {
            switch layer {
            case .block(let block):
                let input = size
                var convs: [[String: Any]] = []
                for (j, c) in block.convolutions.enumerated() {
                    let (d, out) = conv(c, "layers.\(index).\(j)", input: size)
                    convs.append(d)
                    size = out
                }
                let shortcut: Any
                switch block.shortcut {
                case .none: shortcut = "none"
                case .identity: shortcut = "identity"
                case .projection(let c):
                    let (d, out) = conv(c, "layers.\(index).shortcut", input: input)
                    precondition(out == size, "layer \(index): projection gives \(out), block \(size)")
                    shortcut = d
                }
                layers.append(["type": "block", "convs": convs, "shortcut": shortcut])
            case .maxPool(let kernel, let stride, let padding):
                let (t, l, b, r) = padding.resolve(height: size.0, width: size.1, kernel: (kernel, kernel),
                                                   stride: (stride, stride))
                size = ((size.0 + t + b - kernel) / stride + 1, (size.1 + l + r - kernel) / stride + 1)
                layers.append(["type": "maxpool", "kernel": kernel, "stride": stride, "pads": [t, l, b, r]])
            }
        }
        var classifier: Any = NSNull()
        if let c = network.classifier {
            tensors.append(("classifier.weight", c.weight))
            tensors.append(("classifier.bias", c.bias))
            classifier = ["weight": "classifier.weight", "bias": "classifier.bias"]
        }
        let description: [String: Any] = ["format": format, "architecture": network.architecture,
                                          "input": [height, width, channels], "layers": layers,
                                          "taps": network.taps, "classifier": classifier]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: description, options: [.sortedKeys]),
                          as: UTF8.self)
        try writeSafetensors(tensors, metadata: ["frozen": json], to: path)
    }

    /// A minimal safetensors writer: float32, little endian, tensors in the given order.
    static func writeSafetensors(_ tensors: [(String, Tensor)], metadata: [String: String], to path: String) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.scalars.count * 4
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var headerBytes = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }  // pad with spaces, as the format allows
        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: headerBytes)
        for (_, t) in tensors {
            t.scalars.map { $0.bitPattern.littleEndian }.withUnsafeBytes { data.append(contentsOf: $0) }
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
