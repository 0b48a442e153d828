// The five moment ops of a squeeze edge, mixed, forward and backward (SASE supernet).
//
// Per element of a (B, L) statistic map, from the raw moments r1..r4 (and the maximum):
//
//   σ = sqrt(r2 − r1² + eps_std)     skew = (r3 − r1 (3 r2 − 2 r1²)) / (σ³ + eps_skew)
//   l4 = (r4 + eps_l4)^(1/4)         y_f = w0_f r1 + w1_f second_f + b_f     (f: fusions)
//   o_f = relu(γ_f (y_f − μ_f) / sqrt(v_f + eps_f) + β_f)     (μ, v: batch or running stats)
//   out = m_mean r1 + m_l4 l4 + Σ_f m_f o_f
//
// All float64. The forward pass keeps σ, skew, l4 and y (F, B, L) for the backward pass.
// Rows (samples) are the work items; per-row partial sums are added in row order, so results
// do not depend on the thread count. Inner loops are plain element-wise loops the compiler
// vectorises. See mmsase/models/search_space/moment_mixture.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr int kMaxFusions = 8;
enum Second { kMax = 0, kStd = 1, kSkew = 2 };

struct Problem {
  int64_t B = 0, L = 0, F = 0;
  const double* raw = nullptr;     // (B, 4, L), unit stride along L
  int64_t raw_sb = 0, raw_sk = 0;  // its strides along B and the power
  const double* peak = nullptr;    // (B, L) or null
  int second[kMaxFusions] = {};
  double w0[kMaxFusions] = {}, w1[kMaxFusions] = {}, bias[kMaxFusions] = {},
         gamma[kMaxFusions] = {}, beta[kMaxFusions] = {}, m_fuse[kMaxFusions] = {};
  double m_mean = 0, m_l4 = 0;
  double eps_std = 0, eps_skew = 0, eps_l4 = 0;

  const double* r(int64_t b, int k) const { return raw + b * raw_sb + k * raw_sk; }
};

// Per-element statistics of the whole map, (B, L) each, plus y (F, B, L).
struct Saved {
  double *sd, *skew, *l4, *y;
};

const double* second_row(const Problem& P, const Saved& S, int f, int64_t b) {
  const int64_t off = b * P.L;
  switch (P.second[f]) {
    case kMax: return P.peak + off;
    case kStd: return S.sd + off;
    default: return S.skew + off;
  }
}

// σ³ + eps_skew: the skewness's denominator.
inline double skew_denominator(const Problem& P, double sd) { return sd * sd * sd + P.eps_skew; }

// Fusion f's BatchNorm (statistics mean, var) and affine as z = k y + c, and 1 / sqrt(var + eps).
struct Normalise {
  double inv[kMaxFusions], k[kMaxFusions], c[kMaxFusions];
};

Normalise normalise(const Problem& P, const double* mean, const double* var,
                    const std::vector<double>& norm_eps) {
  Normalise N;
  for (int64_t f = 0; f < P.F; ++f) {
    N.inv[f] = 1.0 / std::sqrt(var[f] + norm_eps[f]);
    N.k[f] = P.gamma[f] * N.inv[f];
    N.c[f] = P.beta[f] - N.k[f] * mean[f];
  }
  return N;
}

// body(b, acc) for every row b in parallel, each row adding to its own n partial sums;
// returns their sum over rows, in row order.
template <typename Body>
std::vector<double> row_sums(int64_t rows, int n, const Body& body) {
  std::vector<double> partial(static_cast<size_t>(rows * n), 0.0);
  at::parallel_for(0, rows, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) body(b, partial.data() + b * n);
  });
  std::vector<double> sum(static_cast<size_t>(n), 0.0);
  for (int64_t b = 0; b < rows; ++b)
    for (int k = 0; k < n; ++k) sum[k] += partial[b * n + k];
  return sum;
}

inline double sum_of(const double* __restrict a, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i];
  return s;
}

inline double dot(const double* __restrict a, const double* __restrict b, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// t[i] as a double, for a contiguous float32/float64 tensor.
double value_at(const at::Tensor& t, int64_t i) {
  double v = 0.0;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "moment_mixture", [&] {
    v = static_cast<double>(t.data_ptr<scalar_t>()[i]);
  });
  return v;
}

void set_value(at::Tensor& t, int64_t i, double v) {
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "moment_mixture", [&] {
    t.data_ptr<scalar_t>()[i] = static_cast<scalar_t>(v);
  });
}

// The per-call inputs: raw moments, maximum (float64, or empty), and per fusion f the
// parameters params[4f..4f+3] = conv weight (2 values), conv bias, BN weight, BN bias; the
// mixture weights mix[positions[k]] of the gap ops, the l4 ops and the fusions, in that order.
Problem make_problem(const at::Tensor& raw, const at::Tensor& peak,
                     const std::vector<int64_t>& seconds, const std::vector<at::Tensor>& params,
                     const at::Tensor& mix, const std::vector<int64_t>& positions,
                     int64_t n_mean, int64_t n_l4, const std::vector<double>& eps) {
  TORCH_CHECK(raw.scalar_type() == at::kDouble && raw.dim() == 3 && raw.size(1) == 4 &&
                  raw.stride(2) == 1 && raw.device().is_cpu(),
              "moment_mixture: raw must be a float64 (B, 4, L) CPU tensor with unit stride "
              "along L");
  Problem P;
  P.B = raw.size(0), P.L = raw.size(2), P.F = static_cast<int64_t>(seconds.size());
  TORCH_CHECK(P.F <= kMaxFusions, "moment_mixture: at most ", kMaxFusions, " fusions");
  TORCH_CHECK(static_cast<int64_t>(params.size()) == 4 * P.F,
              "moment_mixture: 4 parameters per fusion");
  TORCH_CHECK(static_cast<int64_t>(positions.size()) == n_mean + n_l4 + P.F &&
                  mix.dim() == 1 && mix.is_contiguous(),
              "moment_mixture: one mixture weight position per op");
  TORCH_CHECK(eps.size() == 3, "moment_mixture: eps = (std, skew, l4)");
  P.raw = raw.data_ptr<double>();
  P.raw_sb = raw.stride(0), P.raw_sk = raw.stride(1);
  for (int64_t f = 0; f < P.F; ++f) {
    const int64_t s = seconds[f];
    TORCH_CHECK(s >= 0 && s <= 2, "moment_mixture: second statistic codes are 0..2");
    P.second[f] = static_cast<int>(s);
    if (s == kMax) {
      TORCH_CHECK(peak.numel() == P.B * P.L && peak.scalar_type() == at::kDouble &&
                      peak.is_contiguous(),
                  "moment_mixture: a max fusion needs a (B, L) peak");
      P.peak = peak.data_ptr<double>();
    }
    const at::Tensor& w = params[4 * f];
    TORCH_CHECK(w.numel() == 2 && w.is_contiguous(), "moment_mixture: conv weights have 2 values");
    P.w0[f] = value_at(w, 0), P.w1[f] = value_at(w, 1);
    P.bias[f] = value_at(params[4 * f + 1], 0);
    P.gamma[f] = value_at(params[4 * f + 2], 0);
    P.beta[f] = value_at(params[4 * f + 3], 0);
    P.m_fuse[f] = value_at(mix, positions[n_mean + n_l4 + f]);
  }
  for (int64_t k = 0; k < n_mean; ++k) P.m_mean += value_at(mix, positions[k]);
  for (int64_t k = 0; k < n_l4; ++k) P.m_l4 += value_at(mix, positions[n_mean + k]);
  P.eps_std = eps[0], P.eps_skew = eps[1], P.eps_l4 = eps[2];
  return P;
}

at::Tensor as_double(const at::Tensor& t) {
  return t.defined() && t.numel() ? t.to(at::kDouble).contiguous() : at::empty({0}, at::kDouble);
}

Saved saved_of(const at::Tensor& stats, const at::Tensor& y) {
  double* s = stats.data_ptr<double>();
  const int64_t n = stats.size(1) * stats.size(2);
  return Saved{s, s + n, s + 2 * n, y.data_ptr<double>()};
}

}  // namespace

// -> [out (B, L) (float64 or float32), batch mean (F), batch biased var (F), stats (3, B, L):
// σ, skew, l4, y (F, B, L)] (float64). In training the batch's statistics normalise and the
// BatchNorms' running statistics are updated as nn.BatchNorm does (momentum < 0: cumulative
// average); otherwise the running statistics normalise.
std::vector<at::Tensor> moment_mixture_forward(
    const at::Tensor& raw, const at::Tensor& peak, std::vector<int64_t> seconds,
    std::vector<at::Tensor> params, const at::Tensor& mix, std::vector<int64_t> positions,
    int64_t n_mean, int64_t n_l4, std::vector<double> eps, bool training,
    std::vector<at::Tensor> running_mean, std::vector<at::Tensor> running_var,
    std::vector<at::Tensor> batches_tracked, std::vector<double> norm_eps,
    std::vector<double> momentum, bool out_double) {
  const at::Tensor peak64 = as_double(peak);
  const Problem P = make_problem(raw, peak64, seconds, params, mix, positions, n_mean, n_l4, eps);
  TORCH_CHECK(static_cast<int64_t>(running_mean.size()) == P.F &&
                  static_cast<int64_t>(running_var.size()) == P.F &&
                  static_cast<int64_t>(batches_tracked.size()) == P.F &&
                  static_cast<int64_t>(norm_eps.size()) == P.F &&
                  static_cast<int64_t>(momentum.size()) == P.F,
              "moment_mixture: one BatchNorm per fusion");
  const int64_t B = P.B, L = P.L, F = P.F, n = B * L;
  auto f64 = raw.options();
  at::Tensor out = at::empty({B, L}, f64);
  at::Tensor stats = at::empty({3, B, L}, f64), y = at::empty({F, B, L}, f64);
  at::Tensor mean = at::empty({F}, f64), var = at::empty({F}, f64);
  const Saved S = saved_of(stats, y);
  // Pass 1: σ, skew and l4 of every element.
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const double *r1 = P.r(b, 0), *r2 = P.r(b, 1), *r3 = P.r(b, 2), *r4 = P.r(b, 3);
      double *sd = S.sd + b * L, *skew = S.skew + b * L, *l4 = S.l4 + b * L;
      for (int64_t l = 0; l < L; ++l) {
        const double s = std::sqrt(r2[l] - r1[l] * r1[l] + P.eps_std);
        sd[l] = s;
        skew[l] = (r3[l] - r1[l] * (3 * r2[l] - 2 * r1[l] * r1[l])) / skew_denominator(P, s);
        l4[l] = std::sqrt(std::sqrt(r4[l] + P.eps_l4));
      }
    }
  });
  // Pass 2: y; per row Σ (y − y0) and Σ (y − y0)², y0 the first element's y as a guess of the
  // mean (no cancellation for maps whose mean is large against their spread).
  double y0[kMaxFusions] = {};
  for (int f = 0; f < F; ++f)
    y0[f] = P.w0[f] * P.raw[0] + P.w1[f] * second_row(P, S, f, 0)[0] + P.bias[f];
  auto sums = row_sums(B, 2 * F, [&](int64_t b, double* acc) {
    const double* r1 = P.r(b, 0);
    for (int f = 0; f < F; ++f) {
      const double* sec = second_row(P, S, f, b);
      double* yf = S.y + (f * B + b) * L;
      const double w0 = P.w0[f], w1 = P.w1[f], c = P.bias[f], shift = y0[f];
      double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t l = 0; l < L; ++l) {
        const double yv = w0 * r1[l] + w1 * sec[l] + c;
        yf[l] = yv;
        const double d = yv - shift;
        s1 += d;
        s2 += d * d;
      }
      acc[f] = s1;
      acc[F + f] = s2;
    }
  });
  double* mp = mean.data_ptr<double>();
  double* vp = var.data_ptr<double>();
  if (training) {
    for (int f = 0; f < F; ++f) {
      const double dm = sums[f] / n;
      mp[f] = y0[f] + dm;
      vp[f] = std::max(0.0, sums[F + f] / n - dm * dm);
      int64_t* count = batches_tracked[f].data_ptr<int64_t>();
      count[0] += 1;
      const double factor = momentum[f] < 0 ? 1.0 / static_cast<double>(count[0]) : momentum[f];
      const double unbiased = n > 1 ? vp[f] * n / (n - 1) : vp[f];
      set_value(running_mean[f], 0,
                (1 - factor) * value_at(running_mean[f], 0) + factor * mp[f]);
      set_value(running_var[f], 0,
                (1 - factor) * value_at(running_var[f], 0) + factor * unbiased);
    }
  } else {
    for (int f = 0; f < F; ++f) {
      mp[f] = value_at(running_mean[f], 0);
      vp[f] = value_at(running_var[f], 0);
    }
  }
  const Normalise Z = normalise(P, mp, vp, norm_eps);
  // Pass 3: the mixture.
  double* o = out.data_ptr<double>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const double* r1 = P.r(b, 0);
      const double* l4 = S.l4 + b * L;
      double* ob = o + b * L;
      for (int64_t l = 0; l < L; ++l) ob[l] = P.m_mean * r1[l] + P.m_l4 * l4[l];
      for (int f = 0; f < F; ++f) {
        const double* yf = S.y + (f * B + b) * L;
        const double k = Z.k[f], c = Z.c[f], m = P.m_fuse[f];
        for (int64_t l = 0; l < L; ++l) ob[l] += m * std::max(k * yf[l] + c, 0.0);
      }
    }
  });
  return {out_double ? out : out.to(at::kFloat), mean, var, stats, y};
}

// -> [grad_raw (B, 4, L) float64, grad_peak (B, L) as peak or empty, grad_mix (like mix,
// zero at positions of other ops), then one gradient per parameter (like the parameter)].
std::vector<at::Tensor> moment_mixture_backward(
    const at::Tensor& grad_out, const at::Tensor& raw, const at::Tensor& peak,
    std::vector<int64_t> seconds, std::vector<at::Tensor> params, const at::Tensor& mix,
    std::vector<int64_t> positions, int64_t n_mean, int64_t n_l4, std::vector<double> eps,
    bool training, const at::Tensor& mean, const at::Tensor& var, std::vector<double> norm_eps,
    const at::Tensor& stats, const at::Tensor& y) {
  const at::Tensor peak64 = as_double(peak);
  const Problem P = make_problem(raw, peak64, seconds, params, mix, positions, n_mean, n_l4, eps);
  const at::Tensor grad = grad_out.to(at::kDouble).contiguous();
  TORCH_CHECK(grad.numel() == P.B * P.L, "moment_mixture: grad must be (B, L)");
  const int64_t B = P.B, L = P.L, F = P.F, n = B * L;
  const Saved S = saved_of(stats, y);
  const double* g = grad.data_ptr<double>();
  const double* mu = mean.data_ptr<double>();
  const Normalise Z = normalise(P, mu, var.data_ptr<double>(), norm_eps);
  // Pass 1: Σ g r1, Σ g l4, and per fusion Σ g o, Σ gz, Σ gz ŷ (gz: the gradient at the BN
  // output, through the ReLU).
  auto first = row_sums(B, 2 + 3 * F, [&](int64_t b, double* acc) {
    const double* gb = g + b * L;
    acc[0] = dot(gb, P.r(b, 0), L);
    acc[1] = dot(gb, S.l4 + b * L, L);
    for (int f = 0; f < F; ++f) {
      const double* yf = S.y + (f * B + b) * L;
      const double k = Z.k[f], c = Z.c[f], m = P.m_fuse[f], muf = mu[f], iv = Z.inv[f];
      double so = 0.0, sz = 0.0, szh = 0.0;
#pragma omp simd reduction(+ : so, sz, szh)
      for (int64_t l = 0; l < L; ++l) {
        const double z = k * yf[l] + c;
        const double on = z > 0 ? 1.0 : 0.0;
        so += gb[l] * z * on;
        const double gz = gb[l] * m * on;
        sz += gz;
        szh += gz * (yf[l] - muf) * iv;
      }
      acc[2 + f] = so;
      acc[2 + F + f] = sz;
      acc[2 + 2 * F + f] = szh;
    }
  });
  auto f64 = raw.options();
  at::Tensor grad_mix = at::zeros_like(mix);
  for (int64_t k = 0; k < n_mean; ++k) set_value(grad_mix, positions[k], first[0]);
  for (int64_t k = 0; k < n_l4; ++k) set_value(grad_mix, positions[n_mean + k], first[1]);
  std::vector<at::Tensor> grad_params;
  for (const at::Tensor& p : params) grad_params.push_back(at::empty_like(p));
  // BN backward: gy = γ inv (gz − a − ŷ c) with batch statistics (a, c: the means of gz and
  // gz ŷ), γ inv gz with fixed ones.
  double a[kMaxFusions], c[kMaxFusions];
  for (int f = 0; f < F; ++f) {
    set_value(grad_mix, positions[n_mean + n_l4 + f], first[2 + f]);
    set_value(grad_params[4 * f + 3], 0, first[2 + F + f]);      // BN bias
    set_value(grad_params[4 * f + 2], 0, first[2 + 2 * F + f]);  // BN weight
    a[f] = training ? first[2 + F + f] / n : 0.0;
    c[f] = training ? first[2 + 2 * F + f] / n : 0.0;
  }
  at::Tensor grad_raw = at::empty({B, 4, L}, f64);
  at::Tensor grad_peak = P.peak ? at::empty({B, L}, f64) : at::empty({0}, f64);
  double* gr = grad_raw.data_ptr<double>();
  double* gpk = P.peak ? grad_peak.data_ptr<double>() : nullptr;
  // Pass 2: the elements' gradients, and Σ gy r1, Σ gy second, Σ gy (conv parameters).
  auto second = row_sums(B, 3 * F, [&](int64_t b, double* acc) {
    std::vector<double> buf(static_cast<size_t>(4 * L));
    double *g_mean = buf.data(), *g_sd = g_mean + L, *g_third = g_sd + L, *gy = g_third + L;
    const double* gb = g + b * L;
    const double* r1 = P.r(b, 0);
    const double* r2 = P.r(b, 1);
    const double *sd = S.sd + b * L, *skew = S.skew + b * L, *l4 = S.l4 + b * L;
    for (int64_t l = 0; l < L; ++l) {
      g_mean[l] = gb[l] * P.m_mean;
      g_sd[l] = 0.0;
      g_third[l] = 0.0;
    }
    for (int f = 0; f < F; ++f) {
      const double* yf = S.y + (f * B + b) * L;
      const double* sec = second_row(P, S, f, b);
      const double k = Z.k[f], cz = Z.c[f], m = P.m_fuse[f], muf = mu[f], iv = Z.inv[f];
      const double af = a[f], cf = c[f], w0 = P.w0[f], w1 = P.w1[f];
      double s_r1 = 0.0, s_sec = 0.0, s_gy = 0.0;
#pragma omp simd reduction(+ : s_r1, s_sec, s_gy)
      for (int64_t l = 0; l < L; ++l) {
        const double on = k * yf[l] + cz > 0 ? 1.0 : 0.0;  // through the ReLU
        const double v = k * (gb[l] * m * on - af - (yf[l] - muf) * iv * cf);
        gy[l] = v;
        s_r1 += v * r1[l];
        s_sec += v * sec[l];
        s_gy += v;
        g_mean[l] += w0 * v;
      }
      acc[f] = s_r1;
      acc[F + f] = s_sec;
      acc[2 * F + f] = s_gy;
      switch (P.second[f]) {
        case kMax: {
          double* out = gpk + b * L;
          for (int64_t l = 0; l < L; ++l) out[l] = w1 * gy[l];
          break;
        }
        case kStd:
          for (int64_t l = 0; l < L; ++l) g_sd[l] += w1 * gy[l];
          break;
        default:  // skew = third / (σ³ + eps)
          for (int64_t l = 0; l < L; ++l) {
            const double gs = w1 * gy[l] / skew_denominator(P, sd[l]);
            g_third[l] += gs;
            g_sd[l] -= gs * 3 * skew[l] * sd[l] * sd[l];
          }
      }
    }
    double *o1 = gr + b * 4 * L, *o2 = o1 + L, *o3 = o2 + L, *o4 = o3 + L;
    const double* r4 = P.r(b, 3);
    for (int64_t l = 0; l < L; ++l) {
      const double g_var = g_sd[l] / (2 * sd[l]);
      o1[l] = g_mean[l] - 2 * r1[l] * g_var + (6 * r1[l] * r1[l] - 3 * r2[l]) * g_third[l];
      o2[l] = g_var - 3 * r1[l] * g_third[l];
      o3[l] = g_third[l];
      o4[l] = gb[l] * P.m_l4 * l4[l] / (4 * (r4[l] + P.eps_l4));
    }
  });
  for (int f = 0; f < F; ++f) {
    set_value(grad_params[4 * f], 0, second[f]);          // conv weight, first input
    set_value(grad_params[4 * f], 1, second[F + f]);      // conv weight, second input
    set_value(grad_params[4 * f + 1], 0, second[2 * F + f]);  // conv bias
  }
  std::vector<at::Tensor> result = {
      grad_raw, P.peak ? grad_peak.to(peak.scalar_type()) : grad_peak, grad_mix};
  result.insert(result.end(), grad_params.begin(), grad_params.end());
  return result;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "The moment ops of a SASE squeeze edge, mixed (supernet).";
  m.def("forward", &moment_mixture_forward);
  m.def("backward", &moment_mixture_backward);
}
