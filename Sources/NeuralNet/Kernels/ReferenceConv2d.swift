// Plain reference convolution: the definition, written for clarity, not speed. The tests
// compare the tuned kernels in Conv2d.swift against it.
import TensorCore

/// The convolution by definition, in Double: `y[n, oy, ox, co] = bias[co] + sum over ky, kx,
/// ci of x[n, oy*s - pad + ky*d, ox*s - pad + kx*d, g*Cg + ci] * w[ky, kx, ci, co]`, where
/// `g` is the group of output channel `co`; taps in the padding contribute zero.
///
/// Layouts as in ``conv2dForward(_:weight:bias:geometry:activation:residual:pool:)``.
public func referenceConv2d(_ input: Tensor, weight: Tensor, bias: Tensor?, geometry g: ConvGeometry) -> Tensor {
    let x = input.scalars, w = weight.scalars, b = bias?.scalars
    var y = [Float](repeating: 0, count: g.batch * g.outHeight * g.outWidth * g.outChannels)
    for n in 0..<g.batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for co in 0..<g.outChannels {
                    let group = co / g.groupOutChannels
                    var sum = Double(b?[co] ?? 0)
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideY - g.padTop + ky * g.dilationY
                        guard iy >= 0 && iy < g.height else { continue }
                        for kx in 0..<g.kernelWidth {
                            let ix = ox * g.strideX - g.padLeft + kx * g.dilationX
                            guard ix >= 0 && ix < g.width else { continue }
                            for ci in 0..<g.groupInChannels {
                                let xv = x[((n * g.height + iy) * g.width + ix) * g.inChannels + group * g.groupInChannels + ci]
                                let wv = w[((ky * g.kernelWidth + kx) * g.groupInChannels + ci) * g.outChannels + co]
                                sum += Double(xv) * Double(wv)
                            }
                        }
                    }
                    y[((n * g.outHeight + oy) * g.outWidth + ox) * g.outChannels + co] = Float(sum)
                }
            }
        }
    }
    return Tensor(y, shape: [g.batch, g.outHeight, g.outWidth, g.outChannels])
}
