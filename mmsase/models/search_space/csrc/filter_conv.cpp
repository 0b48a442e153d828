// Many one-channel convolutions of small maps in one call, forward and backward: the
// excitation operations of a supernet edge, batched layer by layer.
//
//   out[b, k, i, j] = bias[k] + Σ_{u,v} w[k, u, v] · f(h[b, src[k], i + u − KH/2, j + v − KW/2])
//
// for K filters w (K, KH, KW) (odd sides, zero padding, output the size of the input), each
// reading its own input channel src[k] of h (B, Cin, H, W), f the identity or ReLU
// (relu[k]). Filter k only uses the taps inside its own extent (ext_h[k] × ext_w[k], centred):
// smaller kernels are zero-padded to the common size by the caller, and the padding is neither
// multiplied nor differentiated. 1-D convolutions are H = 1.
//
// oneDNN handles one-channel convolutions of a batch poorly (its backward pass measured
// ~5–10 ms for a 7×7 filter over 64 maps of 32×32); these are a few hundred thousand
// multiply-adds. Work items are samples; the weight gradient is accumulated per sample
// (float64) and summed at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FC_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define FC_MULTIVERSION
#endif

// One filter over one map: o (H, W) += Σ_{u,v ∈ taps} wk[u, v] · in(i + u − ph, j + v − pw).
template <typename T>
inline void conv_map_t(const T* __restrict in, const T* __restrict wk, T* __restrict o,
                       int64_t H, int64_t W, int64_t KW, int64_t ph, int64_t pw, int64_t u0,
                       int64_t u1, int64_t v0, int64_t v1) {
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t du = u - ph;
    const int64_t i0 = std::max<int64_t>(0, -du), i1 = std::min(H, H - du);
    for (int64_t v = v0; v < v1; ++v) {
      const int64_t dv = v - pw;
      const int64_t j0 = std::max<int64_t>(0, -dv), j1 = std::min(W, W - dv);
      const T wt = wk[u * KW + v];
      for (int64_t i = i0; i < i1; ++i) {
        const T* __restrict x = in + (i + du) * W + dv;
        T* __restrict y = o + i * W;
        for (int64_t j = j0; j < j1; ++j) y[j] += wt * x[j];
      }
    }
  }
}

// The transposed operation: acc (H, W) += Σ taps wk[u, v] · g(i − u + ph, j − v + pw).
template <typename T>
inline void conv_map_transposed_t(const T* __restrict g, const T* __restrict wk,
                                  T* __restrict acc, int64_t H, int64_t W, int64_t KW,
                                  int64_t ph, int64_t pw, int64_t u0, int64_t u1, int64_t v0,
                                  int64_t v1) {
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t du = u - ph;
    const int64_t i0 = std::max<int64_t>(0, -du), i1 = std::min(H, H - du);
    for (int64_t v = v0; v < v1; ++v) {
      const int64_t dv = v - pw;
      const int64_t j0 = std::max<int64_t>(0, -dv), j1 = std::min(W, W - dv);
      const T wt = wk[u * KW + v];
      for (int64_t i = i0; i < i1; ++i) {
        const T* __restrict x = g + i * W;
        T* __restrict y = acc + (i + du) * W + dv;
        for (int64_t j = j0; j < j1; ++j) y[j] += wt * x[j];
      }
    }
  }
}

// The weight gradient: gw[u, v] = Σ_{i,j} g(i, j) · in(i + u − ph, j + v − pw), in float64.
template <typename T>
inline void conv_map_weight_grad_t(const T* __restrict g, const T* __restrict in,
                                   double* __restrict gw, int64_t H, int64_t W, int64_t KW,
                                   int64_t ph, int64_t pw, int64_t u0, int64_t u1, int64_t v0,
                                   int64_t v1) {
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t du = u - ph;
    const int64_t i0 = std::max<int64_t>(0, -du), i1 = std::min(H, H - du);
    for (int64_t v = v0; v < v1; ++v) {
      const int64_t dv = v - pw;
      const int64_t j0 = std::max<int64_t>(0, -dv), j1 = std::min(W, W - dv);
      double s = 0.0;
      for (int64_t i = i0; i < i1; ++i) {
        const T* __restrict a = g + i * W;
        const T* __restrict x = in + (i + du) * W + dv;
#pragma omp simd reduction(+ : s)
        for (int64_t j = j0; j < j1; ++j) s += static_cast<double>(a[j]) * static_cast<double>(x[j]);
      }
      gw[u * KW + v] = s;
    }
  }
}

#define FC_DEFINE(name, T, DT)                                                                \
  FC_MULTIVERSION void name(const T* a, const T* b, DT* c, int64_t H, int64_t W, int64_t KW, \
                            int64_t ph, int64_t pw, int64_t u0, int64_t u1, int64_t v0,      \
                            int64_t v1) {                                                     \
    name##_t<T>(a, b, c, H, W, KW, ph, pw, u0, u1, v0, v1);                                  \
  }
FC_DEFINE(conv_map, float, float)
FC_DEFINE(conv_map, double, double)
FC_DEFINE(conv_map_transposed, float, float)
FC_DEFINE(conv_map_transposed, double, double)
FC_DEFINE(conv_map_weight_grad, float, double)
FC_DEFINE(conv_map_weight_grad, double, double)
#undef FC_DEFINE

struct Filters {
  int64_t K = 0, KH = 0, KW = 0;
  std::vector<int64_t> src, ext_h, ext_w;
  std::vector<char> relu;
};

// The taps filter k uses: rows u0..u1, columns v0..v1 of its (KH, KW) kernel.
struct Taps {
  int64_t u0, u1, v0, v1;
};
Taps taps_of(const Filters& F, int64_t k) {
  const int64_t mh = (F.KH - F.ext_h[k]) / 2, mw = (F.KW - F.ext_w[k]) / 2;
  return {mh, F.KH - mh, mw, F.KW - mw};
}

// The input channel filter k reads, with its ReLU applied if asked (one map, H·W values).
template <typename scalar_t>
const scalar_t* input_map(const scalar_t* h, int64_t b, int64_t Cin, int64_t HW,
                          const Filters& F, int64_t k, std::vector<scalar_t>& buf) {
  const scalar_t* map = h + (b * Cin + F.src[k]) * HW;
  if (!F.relu[k]) return map;
  for (int64_t q = 0; q < HW; ++q) buf[q] = map[q] > scalar_t(0) ? map[q] : scalar_t(0);
  return buf.data();
}

template <typename scalar_t>
void forward_impl(const scalar_t* h, const scalar_t* w, const scalar_t* bias, scalar_t* out,
                  int64_t B, int64_t Cin, int64_t H, int64_t W, const Filters& F) {
  const int64_t HW = H * W, ph = F.KH / 2, pw = F.KW / 2;
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> buf(static_cast<size_t>(HW));
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t k = 0; k < F.K; ++k) {
        const scalar_t* in = input_map(h, b, Cin, HW, F, k, buf);
        scalar_t* o = out + (b * F.K + k) * HW;
        std::fill(o, o + HW, bias ? bias[k] : scalar_t(0));
        const Taps t = taps_of(F, k);
        conv_map(in, w + k * F.KH * F.KW, o, H, W, F.KW, ph, pw, t.u0, t.u1, t.v0, t.v1);
      }
    }
  });
}

template <typename scalar_t>
void backward_impl(const scalar_t* h, const scalar_t* w, const scalar_t* g, scalar_t* grad_h,
                   double* grad_w_per_sample, double* grad_b_per_sample, int64_t B, int64_t Cin,
                   int64_t H, int64_t W, const Filters& F) {
  const int64_t HW = H * W, ph = F.KH / 2, pw = F.KW / 2, KK = F.KH * F.KW;
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<scalar_t> buf(static_cast<size_t>(HW)), acc(static_cast<size_t>(HW));
    for (int64_t b = b0; b < b1; ++b) {
      if (grad_h) std::fill(grad_h + b * Cin * HW, grad_h + (b + 1) * Cin * HW, scalar_t(0));
      for (int64_t k = 0; k < F.K; ++k) {
        const scalar_t* gk = g + (b * F.K + k) * HW;
        const Taps t = taps_of(F, k);
        if (grad_b_per_sample) {
          double s = 0.0;
          for (int64_t q = 0; q < HW; ++q) s += static_cast<double>(gk[q]);
          grad_b_per_sample[b * F.K + k] = s;
        }
        if (grad_w_per_sample) {
          const scalar_t* in = input_map(h, b, Cin, HW, F, k, buf);
          double* gw = grad_w_per_sample + (b * F.K + k) * KK;
          std::fill(gw, gw + KK, 0.0);
          conv_map_weight_grad(gk, in, gw, H, W, F.KW, ph, pw, t.u0, t.u1, t.v0, t.v1);
        }
        if (grad_h) {
          // ∂/∂f(h) scattered through the taps, then through the ReLU
          std::fill(acc.begin(), acc.end(), scalar_t(0));
          conv_map_transposed(gk, w + k * F.KH * F.KW, acc.data(), H, W, F.KW, ph, pw, t.u0,
                              t.u1, t.v0, t.v1);
          scalar_t* gh = grad_h + (b * Cin + F.src[k]) * HW;
          const scalar_t* map = h + (b * Cin + F.src[k]) * HW;
          if (F.relu[k]) {
            for (int64_t q = 0; q < HW; ++q) gh[q] += map[q] > scalar_t(0) ? acc[q] : scalar_t(0);
          } else {
            for (int64_t q = 0; q < HW; ++q) gh[q] += acc[q];
          }
        }
      }
    }
  });
}

Filters make_filters(const at::Tensor& h, const at::Tensor& w, const std::vector<int64_t>& src,
                     const std::vector<int64_t>& ext_h, const std::vector<int64_t>& ext_w,
                     const std::vector<bool>& relu) {
  TORCH_CHECK(h.device().is_cpu() && h.dim() == 4 && h.is_contiguous() &&
                  (h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble),
              "filter_conv: h must be a contiguous (B, Cin, H, W) float32/float64 CPU tensor");
  TORCH_CHECK(w.dim() == 3 && w.is_contiguous() && w.scalar_type() == h.scalar_type(),
              "filter_conv: weight must be a contiguous (K, KH, KW) tensor of h's dtype");
  Filters F;
  F.K = w.size(0), F.KH = w.size(1), F.KW = w.size(2);
  TORCH_CHECK(F.KH % 2 == 1 && F.KW % 2 == 1, "filter_conv: kernel sides must be odd");
  TORCH_CHECK(static_cast<int64_t>(src.size()) == F.K &&
                  static_cast<int64_t>(ext_h.size()) == F.K &&
                  static_cast<int64_t>(ext_w.size()) == F.K &&
                  static_cast<int64_t>(relu.size()) == F.K,
              "filter_conv: src, ext_h, ext_w and relu need one entry per filter (", F.K, ")");
  for (int64_t k = 0; k < F.K; ++k) {
    TORCH_CHECK(src[k] >= 0 && src[k] < h.size(1), "filter_conv: src[", k, "] = ", src[k],
                " is not a channel of h (", h.size(1), " channels)");
    TORCH_CHECK(ext_h[k] % 2 == 1 && ext_h[k] <= F.KH && ext_w[k] % 2 == 1 && ext_w[k] <= F.KW,
                "filter_conv: filter ", k, " extent ", ext_h[k], "x", ext_w[k],
                " must be odd and fit in ", F.KH, "x", F.KW);
  }
  F.src = src, F.ext_h = ext_h, F.ext_w = ext_w;
  F.relu.assign(relu.begin(), relu.end());
  return F;
}

}  // namespace

at::Tensor filter_conv_forward(const at::Tensor& h, const at::Tensor& w, const at::Tensor& bias,
                               std::vector<int64_t> src, std::vector<int64_t> ext_h,
                               std::vector<int64_t> ext_w, std::vector<bool> relu) {
  const Filters F = make_filters(h, w, src, ext_h, ext_w, relu);
  const int64_t B = h.size(0), Cin = h.size(1), H = h.size(2), W = h.size(3);
  const bool has_bias = bias.defined() && bias.numel() > 0;
  if (has_bias) {
    TORCH_CHECK(bias.numel() == F.K && bias.is_contiguous() && bias.scalar_type() == h.scalar_type(),
                "filter_conv: bias must be K contiguous values of h's dtype");
  }
  at::Tensor out = at::empty({B, F.K, H, W}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "filter_conv_forward", [&] {
    forward_impl<scalar_t>(h.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                           has_bias ? bias.data_ptr<scalar_t>() : nullptr,
                           out.data_ptr<scalar_t>(), B, Cin, H, W, F);
  });
  return out;
}

// -> [grad_h or None, grad_w (K, KH, KW) or None, grad_bias (K) or None]
std::vector<at::Tensor> filter_conv_backward(const at::Tensor& h, const at::Tensor& w,
                                             const at::Tensor& grad_out, std::vector<int64_t> src,
                                             std::vector<int64_t> ext_h,
                                             std::vector<int64_t> ext_w, std::vector<bool> relu,
                                             bool need_h, bool need_w, bool need_bias) {
  const Filters F = make_filters(h, w, src, ext_h, ext_w, relu);
  const int64_t B = h.size(0), Cin = h.size(1), H = h.size(2), W = h.size(3);
  at::Tensor g = grad_out.contiguous();
  TORCH_CHECK(g.scalar_type() == h.scalar_type() && g.dim() == 4 && g.size(0) == B &&
                  g.size(1) == F.K && g.size(2) == H && g.size(3) == W,
              "filter_conv: grad_out must be (B, K, H, W) of h's dtype");
  auto f64 = h.options().dtype(at::kDouble);
  at::Tensor grad_h = need_h ? at::empty_like(h) : at::Tensor();
  at::Tensor gw = need_w ? at::empty({B, F.K, F.KH, F.KW}, f64) : at::Tensor();
  at::Tensor gb = need_bias ? at::empty({B, F.K}, f64) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "filter_conv_backward", [&] {
    backward_impl<scalar_t>(h.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(),
                            need_h ? grad_h.data_ptr<scalar_t>() : nullptr,
                            need_w ? gw.data_ptr<double>() : nullptr,
                            need_bias ? gb.data_ptr<double>() : nullptr, B, Cin, H, W, F);
  });
  return {grad_h, need_w ? gw.sum(0).to(h.scalar_type()) : at::Tensor(),
          need_bias ? gb.sum(0).to(h.scalar_type()) : at::Tensor()};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Batched one-channel convolutions of small maps (SASE supernet excitations).";
  m.def("forward", &filter_conv_forward);
  m.def("backward", &filter_conv_backward);
}
