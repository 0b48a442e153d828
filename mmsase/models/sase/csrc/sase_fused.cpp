// Fused CPU inference kernels for the SASE block with the paper genotype (spec §1, §3).
//
// The block reads its input x (B, C, H, W) for five full-size quantities: the per-channel
// mean and max over H·W (cs = gap_gmp), the per-position mean over C (ss1 = gap), the
// per-position L4 norm over C of x ⊙ m2 (ss2 = l4) and the output x ⊙ (m1 + ms) / 2.
// m2 depends on the first two and the output on everything, so three passes over x are the
// minimum; this file implements them, the Python side (mmsase/models/sase/fused.py) does the
// channel maths between them with the block's own modules.
//
//   pass A  sase_pass_a(x)        -> (mean_hw x (B,C), max_hw x (B,C), mean_c x (B,1,H,W))
//   pass B  sase_pass_b(x, m2)    -> (mean_c (m2 ⊙ x)^4 + eps)^(1/4)  (B,1,H,W)
//   pass C  sase_pass_c(x, m1, ms) -> x ⊙ (m1 + ms) / 2               (B,C,H,W)
//
// Between B and C, sase_spatial_tail(u1, u2, params...) -> ms computes the spatial branch on
// the (B, 1, H, W) maps in one call (fusion, BN, two 3×3 convs): see its comment.
//
// Passes A and B stream x one (b, c) row segment at a time: a work item is one sample b and
// one chunk of positions; it walks the C channels of that chunk, reducing each row segment
// into per-(b, c) partials (pass A) while accumulating the per-position channel reduction in
// a chunk-sized buffer that stays in L1. Items never share outputs, so there are no races;
// pass A's per-chunk partials are combined afterwards. Pass A's row reduction is written with
// vector types (several independent accumulators, so no -ffast-math is needed); the other
// loops are element-wise and auto-vectorise. Pass C is parallel over (b, c) rows.
//
// Inputs: contiguous NCHW float32 CPU tensors (checked). Threads: at::parallel_for, i.e.
// torch's intra-op pool (torch.set_num_threads / OMP_NUM_THREADS). Build: -O3 for baseline
// x86-64; the hot loops also get an AVX2 clone chosen at run time (SASE_MULTIVERSION).
//
// Only ATen and torch's pybind11 bindings are included (not <torch/extension.h>, which pulls
// in the whole C++ frontend): this halves the build time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr int64_t kLanes = 16;        // chunk sizes are multiples of this
constexpr int64_t kMaxChunk = 4096;   // positions per work item: 16 KB accumulator, in L1
constexpr int64_t kMinChunk = 256;    // do not split rows finer than this for parallelism
constexpr float kL4Eps = 1e-6f;       // spec §2 l4 (mmsase.models.search_space.statistics.L4_EPS)

// On x86-64 build each hot kernel for baseline x86-64 and for AVX2; the loader picks
// the best at run time (GCC function multi-versioning). Elsewhere: one portable build.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SASE_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define SASE_MULTIVERSION
#endif

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "sase_fused: x must be a CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "sase_fused: x must be float32");
  TORCH_CHECK(x.dim() == 4, "sase_fused: x must be (B, C, H, W)");
  TORCH_CHECK(x.is_contiguous(), "sase_fused: x must be contiguous (NCHW)");
}

at::Tensor as_matrix(const at::Tensor& t, int64_t rows, int64_t cols, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat,
              "sase_fused: ", name, " must be a float32 CPU tensor");
  TORCH_CHECK(t.numel() == rows * cols, "sase_fused: ", name, " must have ", rows * cols,
              " elements, got ", t.numel());
  return t.reshape({rows, cols}).contiguous();
}

// Split H·W into chunks: at most kMaxChunk positions, and enough items (B · chunks) to keep
// every thread busy, but never below kMinChunk positions. Multiple of kLanes.
int64_t chunk_size(int64_t batch, int64_t hw) {
  int64_t chunk = std::min(hw, kMaxChunk);
  const int64_t want_items = 4 * static_cast<int64_t>(at::get_num_threads());
  while (chunk > kMinChunk && batch * ((hw + chunk - 1) / chunk) < want_items) chunk /= 2;
  chunk = std::max<int64_t>(chunk, std::min<int64_t>(hw, kMinChunk));
  if (chunk < hw) chunk = (chunk + kLanes - 1) / kLanes * kLanes;
  return chunk;
}

// Passes A and B: body(item, b, row, acc, n) for every work item — sample b and a chunk of
// positions (see the file comment): row points at x[b, 0, chunk], acc at the chunk of the
// per-position output of sample b, zeroed first. Items never share an acc.
template <typename Body>
void for_each_chunk(const float* px, float* out, int64_t B, int64_t C, int64_t HW,
                    int64_t chunk, const Body& body) {
  const int64_t chunks = (HW + chunk - 1) / chunk;
  at::parallel_for(0, B * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / chunks, start = (item % chunks) * chunk;
      const int64_t n = std::min(chunk, HW - start);
      float* acc = out + b * HW + start;
      std::fill(acc, acc + n, 0.f);
      body(item, b, px + b * C * HW + start, acc, n);
    }
  });
}

// Eight floats as one value (GCC/Clang vector extension): SSE pairs on baseline x86-64, one
// AVX register in the AVX2 clones, NEON pairs on ARM. Loads and stores go through memcpy, so
// rows need no alignment. Macros rather than helper functions: no vector-typed arguments
// cross a function boundary (whose ABI would differ between the clones).
typedef float vec8 __attribute__((vector_size(32)));
#define SASE_LOAD8(p) \
  __extension__({ vec8 v_; std::memcpy(&v_, (p), sizeof(vec8)); v_; })
#define SASE_STORE8(p, v) \
  do { const vec8 s_ = (v); std::memcpy((p), &s_, sizeof(vec8)); } while (0)
#define SASE_MAX8(a, b) ((a) > (b) ? (a) : (b))

// Pass A's row kernel: *sum, *peak = sum and max of row[0..n); acc[i] += row[i].
// Two independent vector accumulators (16 lanes) per statistic; lanes summed in double.
SASE_MULTIVERSION
void row_sum_max_accumulate(const float* __restrict row, float* __restrict acc, int64_t n,
                            double* sum, float* peak) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  vec8 s0 = {}, s1 = {};
  vec8 m0 = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  vec8 m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const vec8 a = SASE_LOAD8(row + i), b = SASE_LOAD8(row + i + 8);
    s0 += a;
    s1 += b;
    m0 = SASE_MAX8(m0, a);
    m1 = SASE_MAX8(m1, b);
    SASE_STORE8(acc + i, SASE_LOAD8(acc + i) + a);
    SASE_STORE8(acc + i + 8, SASE_LOAD8(acc + i + 8) + b);
  }
  s0 += s1;
  m0 = SASE_MAX8(m0, m1);
  double total = 0.0;
  float mx = kNegInf;
  for (int l = 0; l < 8; ++l) {
    total += s0[l];
    mx = mx > m0[l] ? mx : m0[l];
  }
  for (; i < n; ++i) {
    const float v = row[i];
    total += v;
    mx = mx > v ? mx : v;
    acc[i] += v;
  }
  *sum = total;
  *peak = mx;
}

// Pass B's row kernel: acc[i] += (scale · row[i])^4.
SASE_MULTIVERSION
void row_fourth_power_accumulate(const float* __restrict row, float* __restrict acc,
                                 int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = row[i] * scale;
    const float t2 = t * t;
    acc[i] += t2 * t2;
  }
}

// Pass C's row kernel: out[i] = row[i] · (a + s[i]) / 2 — the reference's order of
// operations (halving is exact), so the result is bit-identical to x * (m1 + ms) / 2.
SASE_MULTIVERSION
void row_scale(const float* __restrict row, const float* __restrict s, float a,
               float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = row[i] * (a + s[i]) * 0.5f;
}

}  // namespace

// Pass A: one sweep over x for the three statistics that need only x.
std::vector<at::Tensor> sase_pass_a(const at::Tensor& x) {
  check_input(x);
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  TORCH_CHECK(B > 0 && C > 0 && HW > 0, "sase_fused: empty input");
  const int64_t chunk = chunk_size(B, HW);
  const int64_t chunks = (HW + chunk - 1) / chunk;
  auto opts = x.options();
  at::Tensor mean = at::empty({B, C}, opts);
  at::Tensor peak = at::empty({B, C}, opts);
  at::Tensor cmean = at::empty({B, 1, x.size(2), x.size(3)}, opts);
  std::vector<double> part_sum(static_cast<size_t>(B * chunks * C));
  std::vector<float> part_max(static_cast<size_t>(B * chunks * C));
  const float* px = x.data_ptr<float>();
  float* pc = cmean.data_ptr<float>();
  const float inv_c = 1.f / static_cast<float>(C);

  for_each_chunk(px, pc, B, C, HW, chunk,
                 [&](int64_t item, int64_t, const float* row, float* acc, int64_t n) {
    double* ps = part_sum.data() + item * C;
    float* pm = part_max.data() + item * C;
    for (int64_t c = 0; c < C; ++c, row += HW) {
      row_sum_max_accumulate(row, acc, n, ps + c, pm + c);
    }
    for (int64_t i = 0; i < n; ++i) acc[i] *= inv_c;
  });

  // Combine the per-chunk partials (B · chunks · C values, negligible).
  float* pmean = mean.data_ptr<float>();
  float* ppeak = peak.data_ptr<float>();
  const double inv_hw = 1.0 / static_cast<double>(HW);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < C; ++c) {
      double s = 0.0;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < chunks; ++k) {
        const int64_t idx = (b * chunks + k) * C + c;
        s += part_sum[idx];
        m = std::max(m, part_max[idx]);
      }
      pmean[b * C + c] = static_cast<float>(s * inv_hw);
      ppeak[b * C + c] = m;
    }
  }
  return {mean, peak, cmean};
}

// Pass B: one sweep over x for the L4 norm over channels of x ⊙ m2 (m2: B·C values).
at::Tensor sase_pass_b(const at::Tensor& x, const at::Tensor& m2) {
  check_input(x);
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  TORCH_CHECK(B > 0 && C > 0 && HW > 0, "sase_fused: empty input");
  at::Tensor scale = as_matrix(m2, B, C, "m2");
  const int64_t chunk = chunk_size(B, HW);
  at::Tensor out = at::empty({B, 1, x.size(2), x.size(3)}, x.options());
  const float* px = x.data_ptr<float>();
  const float* pm = scale.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const float inv_c = 1.f / static_cast<float>(C);

  for_each_chunk(px, po, B, C, HW, chunk,
                 [&](int64_t, int64_t b, const float* row, float* acc, int64_t n) {
    for (int64_t c = 0; c < C; ++c, row += HW) {
      row_fourth_power_accumulate(row, acc, n, pm[b * C + c]);
    }
    for (int64_t i = 0; i < n; ++i) acc[i] = std::sqrt(std::sqrt(acc[i] * inv_c + kL4Eps));
  });
  return out;
}

// Pass C: y = x ⊙ (m1 + ms) / 2 in one sweep (m1: B·C values, ms: B·H·W values).
at::Tensor sase_pass_c(const at::Tensor& x, const at::Tensor& m1, const at::Tensor& ms) {
  check_input(x);
  const int64_t B = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  at::Tensor channel = as_matrix(m1, B, C, "m1");
  at::Tensor spatial = as_matrix(ms, B, HW, "ms");
  at::Tensor out = at::empty_like(x);
  const float* px = x.data_ptr<float>();
  const float* pa = channel.data_ptr<float>();
  const float* ps = spatial.data_ptr<float>();
  float* po = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(HW, 1));
  at::parallel_for(0, B * C, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / C;
      row_scale(px + r * HW, ps + b * HW, pa[r], po + r * HW, HW);
    }
  });
  return out;
}

namespace {

const float* scalars(const at::Tensor& t, int64_t n, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
                  t.numel() == n,
              "sase_fused: ", name, " must be a contiguous float32 CPU tensor of ", n,
              " elements");
  return t.data_ptr<float>();
}

// out = bias + 3×3 cross-correlation of the zero-padded (H+2)×(W+2) map `in` (F.conv2d).
void conv3x3(const float* in, const float* k, float bias, float* out, int64_t H, int64_t W) {
  const int64_t P = W + 2;
  for (int64_t i = 0; i < H; ++i) {
    const float* r0 = in + i * P;
    const float* r1 = r0 + P;
    const float* r2 = r1 + P;
    float* o = out + i * W;
    for (int64_t j = 0; j < W; ++j) {
      o[j] = bias + k[0] * r0[j] + k[1] * r0[j + 1] + k[2] * r0[j + 2] + k[3] * r1[j] +
             k[4] * r1[j + 1] + k[5] * r1[j + 2] + k[6] * r2[j] + k[7] * r2[j + 1] +
             k[8] * r2[j + 2];
    }
  }
}

}  // namespace

// The spatial tail, on (B, 1, H, W) maps: h = ReLU(BN(w0·u1 + w1·u2 + b)) (the block's
// 2→1 fusion, BN in eval mode) and ms = σ(conv3x3(ReLU(conv3x3(h)))) (se = conv_3x3x2).
// Tiny maths, but as ten torch calls it costs more than a pass over x (oneDNN sets up every
// one-channel convolution anew); here it is one call. Parallel over samples.
at::Tensor sase_spatial_tail(const at::Tensor& u1, const at::Tensor& u2,
                             const at::Tensor& fuse_w, const at::Tensor& fuse_b,
                             const at::Tensor& bn_mean, const at::Tensor& bn_var,
                             const at::Tensor& bn_w, const at::Tensor& bn_b, double bn_eps,
                             const at::Tensor& conv1_w, const at::Tensor& conv1_b,
                             const at::Tensor& conv2_w, const at::Tensor& conv2_b) {
  TORCH_CHECK(u1.dim() == 4 && u1.size(1) == 1 && u1.sizes() == u2.sizes(),
              "sase_fused: u1, u2 must be (B, 1, H, W) maps of one shape");
  const int64_t B = u1.size(0), H = u1.size(2), W = u1.size(3), HW = H * W;
  const float* pu1 = scalars(u1, B * HW, "u1");
  const float* pu2 = scalars(u2, B * HW, "u2");
  const float* fw = scalars(fuse_w, 2, "fuse weight");
  const float fb = *scalars(fuse_b, 1, "fuse bias");
  const float rm = *scalars(bn_mean, 1, "BN running mean");
  const float rv = *scalars(bn_var, 1, "BN running var");
  const float gw = *scalars(bn_w, 1, "BN weight");
  const float gb = *scalars(bn_b, 1, "BN bias");
  const float* k1 = scalars(conv1_w, 9, "conv1 weight");
  const float b1 = *scalars(conv1_b, 1, "conv1 bias");
  const float* k2 = scalars(conv2_w, 9, "conv2 weight");
  const float b2 = *scalars(conv2_b, 1, "conv2 bias");
  const float bn_scale = gw / std::sqrt(rv + static_cast<float>(bn_eps));
  at::Tensor out = at::empty({B, 1, H, W}, u1.options());
  float* po = out.data_ptr<float>();
  const int64_t P = W + 2, padded = (H + 2) * P;

  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> h(padded, 0.f), g(padded, 0.f), t(HW);
    for (int64_t b = begin; b < end; ++b) {
      const float* a1 = pu1 + b * HW;
      const float* a2 = pu2 + b * HW;
      for (int64_t i = 0; i < H; ++i) {
        for (int64_t j = 0; j < W; ++j) {
          const int64_t q = i * W + j;
          const float v = ((fw[0] * a1[q] + fb) + fw[1] * a2[q] - rm) * bn_scale + gb;
          h[(i + 1) * P + j + 1] = v > 0.f ? v : 0.f;
        }
      }
      conv3x3(h.data(), k1, b1, t.data(), H, W);
      for (int64_t i = 0; i < H; ++i) {
        for (int64_t j = 0; j < W; ++j) {
          const float v = t[i * W + j];
          g[(i + 1) * P + j + 1] = v > 0.f ? v : 0.f;
        }
      }
      float* o = po + b * HW;
      conv3x3(g.data(), k2, b2, o, H, W);
      for (int64_t q = 0; q < HW; ++q) o[q] = 1.f / (1.f + std::exp(-o[q]));
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Fused CPU inference passes of the SASE block (paper genotype).";
  m.def("pass_a", &sase_pass_a, "x -> (mean_hw x (B,C), max_hw x (B,C), mean_c x (B,1,H,W))",
        pybind11::arg("x"));
  m.def("pass_b", &sase_pass_b, "(x, m2) -> (mean_c (m2*x)^4 + 1e-6)^(1/4) (B,1,H,W)",
        pybind11::arg("x"), pybind11::arg("m2"));
  m.def("pass_c", &sase_pass_c, "(x, m1, ms) -> x * (m1 + ms) / 2", pybind11::arg("x"),
        pybind11::arg("m1"), pybind11::arg("ms"));
  m.def("spatial_tail", &sase_spatial_tail,
        "(u1, u2, fuse conv w/b, BN mean/var/w/b/eps, conv1 w/b, conv2 w/b) -> ms (B,1,H,W)");
}
