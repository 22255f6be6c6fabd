// The one value-noise primitive of the generated images and defects: lattice values blended
// with a smoothstep (C1) interpolant, which avoids the visible grid of plain bilinear
// interpolation. The generators differ only in where their lattice values come from (a
// hash of the lattice point, or a periodic table drawn from a seeded generator) and in how
// they sum octaves.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Value noise at `(x, y)`: `lattice(i, j)` at the four integer points around it, blended.
@inline(__always)
func valueNoise(_ x: Float, _ y: Float, lattice: (Int, Int) -> Float) -> Float {
    let fx = floorf(x), fy = floorf(y)
    let ix = Int(fx), iy = Int(fy)
    let tx = x - fx, ty = y - fy
    let sx = tx * tx * (3 - 2 * tx), sy = ty * ty * (3 - 2 * ty)
    let a = lattice(ix, iy), b = lattice(ix + 1, iy), c = lattice(ix, iy + 1), d = lattice(ix + 1, iy + 1)
    let top = a + (b - a) * sx
    return top + ((c + (d - c) * sx) - top) * sy
}
