// Weighted power sums of a feature map along its two axes, forward and backward, in one
// sweep each: the statistics every squeeze operation of the SASE supernet is made of.
//
// For x (B, C, N) (N = H·W) and J weighted rows per axis, each with a power k ∈ {1,2,3,4}:
//
//   chan [b, j, p] = Σ_c chan_w [b, j, c] · x[b, c, p]^k_j     (over channels, per position)
//   space[b, j, c] = Σ_p space_w[b, j, p] · x[b, c, p]^k_j     (over positions, per channel)
//
// and optionally the maxima max_c (s[b,c] · x[b,c,p]) (s a per-channel scale) and
// max_p x[b,c,p]. Means, central moments, the L4 pooling and the standardise-then-L2
// squeezes of both axes are functions of these sums (mmsase/models/search_space/
// power_sums.py), so one sweep replaces a dozen passes over x, and the backward pass
//
//   ∂L/∂x[b,c,p] = Σ_j k_j x^(k_j−1) (chan_w[b,j,c] g_chan[b,j,p] + g_space[b,j,c] space_w[b,j,p])
//                  + (the maxima's terms: to the first channel / position reaching the max)
//
// is one Horner evaluation per element instead of a sum of a dozen full-size gradients.
//
// Sums, weights and their gradients are float64 (central moments are differences of these
// sums); x and its gradient are float32 or float64, and the per-element polynomial of the
// backward pass is evaluated in x's type (as accurate as torch's own float32 backward of the
// same statistics; tested). Work items are samples (at::parallel_for
// over B, torch's intra-op threads). The loops are in power_sums_kernels.h, compiled twice:
// for the baseline target and for AVX2+FMA, chosen at run time.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr int64_t kChunk = 256;  // positions per chunk: the float64 row buffers stay in L1
constexpr int kMaxPower = 4;

// Four doubles as one value (GCC/Clang vector extension): one AVX register in the AVX2 build,
// two SSE registers otherwise. Unaligned loads and stores through memcpy.
typedef double vd4 __attribute__((vector_size(32)));
#define load4(p) __extension__({ vd4 v_; std::memcpy(&v_, (p), sizeof(vd4)); v_; })
#define store4(p, v) do { const vd4 s_ = (v); std::memcpy((p), &s_, sizeof(vd4)); } while (0)

struct Rows {
  // One axis's weighted rows: weights (B, J, L) contiguous float64 and each row's power.
  const double* w = nullptr;
  std::vector<int> pow;
  int64_t J = 0;
};

int max_power(const Rows& a, const Rows& b) {
  int k = 1;
  for (int p : a.pow) k = std::max(k, p);
  for (int p : b.pow) k = std::max(k, p);
  return k;
}

// Everything one call reads and writes (null pointers: not asked for).
template <typename scalar_t>
struct Problem {
  int64_t B = 0, C = 0, N = 0;
  const scalar_t* x = nullptr;
  Rows chan, space;
  const double* scale = nullptr;  // (B, C) for the channel max, or null (1)
  // forward outputs
  double* chan_out = nullptr;     // (B, Jc, N)
  double* space_out = nullptr;    // (B, Js, C)
  scalar_t* cmax = nullptr;       // (B, N)
  double* cidx = nullptr;         // (B, N): its channel, as float64; an input of backward
  scalar_t* smax = nullptr;       // (B, C); an input of backward (arg-max found again)
  // backward inputs and outputs
  const double* g_chan = nullptr;
  const double* g_space = nullptr;
  const scalar_t* g_cmax = nullptr;
  const scalar_t* g_smax = nullptr;
  scalar_t* grad_x = nullptr;
  double* grad_chan_w = nullptr;
  double* grad_space_w = nullptr;
  double* grad_scale = nullptr;

  double scale_of(int64_t b, int64_t c) const { return scale ? scale[b * C + c] : 1.0; }
};

namespace baseline {
#include "power_sums_kernels.h"
}  // namespace baseline

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PS_HAVE_AVX2 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "power_sums_kernels.h"
}  // namespace avx2
#pragma GCC pop_options
#endif

template <typename scalar_t>
void run(const Problem<scalar_t>& P, bool forward) {
#ifdef PS_HAVE_AVX2
  static const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2) return forward ? avx2::forward(P) : avx2::backward(P);
#endif
  return forward ? baseline::forward(P) : baseline::backward(P);
}

Rows make_rows(const at::Tensor& w, const std::vector<int64_t>& pw, int64_t B, int64_t L,
               const char* name) {
  Rows r;
  r.J = static_cast<int64_t>(pw.size());
  if (r.J == 0) return r;
  TORCH_CHECK(w.scalar_type() == at::kDouble && w.device().is_cpu() && w.is_contiguous(),
              "power_sums: ", name, " must be a contiguous float64 CPU tensor");
  TORCH_CHECK(w.dim() == 3 && w.size(0) == B && w.size(1) == r.J && w.size(2) == L,
              "power_sums: ", name, " must have shape (", B, ", ", r.J, ", ", L, "), got ",
              w.sizes());
  for (int64_t k : pw) {
    TORCH_CHECK(k >= 1 && k <= kMaxPower, "power_sums: powers must be 1..4, got ", k);
    r.pow.push_back(static_cast<int>(k));
  }
  r.w = w.data_ptr<double>();
  return r;
}

const double* optional_double(const at::Tensor& t, std::vector<int64_t> shape, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.device().is_cpu() && t.is_contiguous() &&
                  t.sizes() == at::IntArrayRef(shape),
              "power_sums: ", name, " must be a contiguous float64 CPU tensor of shape ",
              at::IntArrayRef(shape), ", got ", t.sizes());
  return t.data_ptr<double>();
}

template <typename scalar_t>
scalar_t* optional_like_x(const at::Tensor& t, const at::Tensor& x, std::vector<int64_t> shape,
                          const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  TORCH_CHECK(t.scalar_type() == x.scalar_type() && t.is_contiguous() &&
                  t.sizes() == at::IntArrayRef(shape),
              "power_sums: ", name, " must be contiguous, of x's dtype and shape ",
              at::IntArrayRef(shape), ", got ", t.sizes());
  return t.data_ptr<scalar_t>();
}

void check_x(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 3 && x.is_contiguous(),
              "power_sums: x must be a contiguous (B, C, N) CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "power_sums: x must be float32 or float64");
  TORCH_CHECK(x.numel() > 0, "power_sums: x is empty");
}

// The parts of a Problem both entry points fill in the same way.
template <typename scalar_t>
Problem<scalar_t> make_problem(const at::Tensor& x, const at::Tensor& chan_w,
                               const std::vector<int64_t>& chan_pow, const at::Tensor& space_w,
                               const std::vector<int64_t>& space_pow,
                               const at::Tensor& chan_max_scale) {
  Problem<scalar_t> P;
  P.B = x.size(0), P.C = x.size(1), P.N = x.size(2);
  P.x = x.data_ptr<scalar_t>();
  P.chan = make_rows(chan_w, chan_pow, P.B, P.C, "chan_w");
  P.space = make_rows(space_w, space_pow, P.B, P.N, "space_w");
  P.scale = optional_double(chan_max_scale, {P.B, P.C}, "chan_max_scale");
  return P;
}

}  // namespace

// -> [chan (B,Jc,N) f64, space (B,Js,C) f64, cmax (B,N), cidx (B,N) f64, smax (B,C)] (empty
// tensors for what was not asked for).
std::vector<at::Tensor> power_sums_forward(const at::Tensor& x, const at::Tensor& chan_w,
                                           std::vector<int64_t> chan_pow,
                                           const at::Tensor& space_w,
                                           std::vector<int64_t> space_pow, bool chan_max,
                                           const at::Tensor& chan_max_scale, bool space_max) {
  check_x(x);
  const int64_t B = x.size(0), C = x.size(1), N = x.size(2);
  auto f64 = x.options().dtype(at::kDouble);
  at::Tensor chan = at::empty({B, static_cast<int64_t>(chan_pow.size()), N}, f64);
  at::Tensor space = at::empty({B, static_cast<int64_t>(space_pow.size()), C}, f64);
  at::Tensor cmax = at::empty({chan_max ? B : 0, N}, x.options());
  at::Tensor cidx = at::empty({chan_max ? B : 0, N}, f64);
  at::Tensor smax = at::empty({space_max ? B : 0, C}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "power_sums_forward", [&] {
    auto P = make_problem<scalar_t>(x, chan_w, chan_pow, space_w, space_pow, chan_max_scale);
    P.chan_out = P.chan.J ? chan.data_ptr<double>() : nullptr;
    P.space_out = P.space.J ? space.data_ptr<double>() : nullptr;
    P.cmax = chan_max ? cmax.data_ptr<scalar_t>() : nullptr;
    P.cidx = chan_max ? cidx.data_ptr<double>() : nullptr;
    P.smax = space_max ? smax.data_ptr<scalar_t>() : nullptr;
    run(P, true);
  });
  return {chan, space, cmax, cidx, smax};
}

// -> [grad_x, grad_chan_w, grad_space_w, grad_scale]; the last three only if asked for, else
// None. cidx is the forward's arg-max over channels, smax its maxima over positions (whose
// arg-max is found again by comparison).
std::vector<at::Tensor> power_sums_backward(
    const at::Tensor& x, const at::Tensor& chan_w, std::vector<int64_t> chan_pow,
    const at::Tensor& space_w, std::vector<int64_t> space_pow, const at::Tensor& g_chan,
    const at::Tensor& g_space, const at::Tensor& cidx, const at::Tensor& g_cmax,
    const at::Tensor& chan_max_scale, const at::Tensor& smax, const at::Tensor& g_smax,
    bool need_chan_w, bool need_space_w, bool need_scale) {
  check_x(x);
  const int64_t B = x.size(0), C = x.size(1), N = x.size(2);
  const int64_t Jc = static_cast<int64_t>(chan_pow.size());
  const int64_t Js = static_cast<int64_t>(space_pow.size());
  const bool use_cmax = cidx.numel() && g_cmax.defined() && g_cmax.numel();
  const bool use_smax = smax.numel() && g_smax.defined() && g_smax.numel();
  auto f64 = x.options().dtype(at::kDouble);
  at::Tensor grad_x = at::empty_like(x);
  at::Tensor grad_cw = need_chan_w && Jc ? at::empty({B, Jc, C}, f64) : at::Tensor();
  at::Tensor grad_sw = need_space_w && Js ? at::empty({B, Js, N}, f64) : at::Tensor();
  at::Tensor grad_scale = need_scale && use_cmax ? at::empty({B, C}, f64) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "power_sums_backward", [&] {
    auto P = make_problem<scalar_t>(x, chan_w, chan_pow, space_w, space_pow, chan_max_scale);
    P.g_chan = Jc ? optional_double(g_chan, {B, Jc, N}, "g_chan") : nullptr;
    P.g_space = Js ? optional_double(g_space, {B, Js, C}, "g_space") : nullptr;
    if (use_cmax) {
      P.cidx = const_cast<double*>(optional_double(cidx, {B, N}, "cidx"));
      P.g_cmax = optional_like_x<scalar_t>(g_cmax, x, {B, N}, "g_cmax");
    }
    if (use_smax) {
      P.smax = optional_like_x<scalar_t>(smax, x, {B, C}, "smax");
      P.g_smax = optional_like_x<scalar_t>(g_smax, x, {B, C}, "g_smax");
    }
    P.grad_x = grad_x.data_ptr<scalar_t>();
    P.grad_chan_w = grad_cw.defined() ? grad_cw.data_ptr<double>() : nullptr;
    P.grad_space_w = grad_sw.defined() ? grad_sw.data_ptr<double>() : nullptr;
    P.grad_scale = grad_scale.defined() ? grad_scale.data_ptr<double>() : nullptr;
    run(P, false);
  });
  return {grad_x, grad_cw, grad_sw, grad_scale};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Weighted power sums of a feature map along channels and positions (SASE supernet).";
  m.def("forward", &power_sums_forward);
  m.def("backward", &power_sums_backward);
}
