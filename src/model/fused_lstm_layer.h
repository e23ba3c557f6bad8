// FusedLstmLayer: one unidirectional LSTM layer over a whole window on the CPU, as one
// autograd node with a hand-written backward.
//
// Why: libtorch's CPU LSTM (oneDNN) took ~35 ms forward + backward for PTB small's two
// layers on one thread where its matmuls alone take ~20 ms (README, "Recurrent layers").
// Here the time goes to matmuls of the best shapes:
// - forward: the input projections of all T steps as one [T*B, I] x [I, 4H] matmul, then
//   per step one [B, H] x [H, 4H] matmul and the gates' element-wise pass;
// - backward: per step one element-wise pass (no transcendental functions: the activated
//   gates and tanh(c) are saved) and one [B, 4H] x [4H, H] matmul for dh; the weight and
//   input gradients of all steps as three large matmuls at the end.
//
// Semantics are torch::lstm's with biases (gate order i, f, g, o): same values and
// gradients (tests, to 1e-10 in double, 1e-5 in float). Double backward is not supported.
//
// Shapes: x [T, B, I]; h0, c0 [B, H]; w_ih [4H, I]; w_hh [4H, H]; b_ih, b_hh [4H].
// Returns y [T, B, H] (h of every step), h_T and c_T [B, H]. CPU, float or double.
#pragma once

#include <tuple>

#include <ATen/core/Tensor.h>

namespace distrnn::model {

std::tuple<at::Tensor, at::Tensor, at::Tensor> FusedLstmLayer(const at::Tensor& x, const at::Tensor& h0,
                                                              const at::Tensor& c0, const at::Tensor& w_ih,
                                                              const at::Tensor& w_hh, const at::Tensor& b_ih,
                                                              const at::Tensor& b_hh);

}  // namespace distrnn::model
