// Multiplicative recurrent cells (Krause et al. 2016, "Multiplicative LSTM for sequence
// modelling"): mLSTM and mGRU, each run over a whole sequence in one direction.
//
// Notation: x_t [B, I] input, h_{t-1} [B, H] previous hidden state, σ the logistic
// sigmoid, ⊙ the element-wise product. Both cells share the multiplicative intermediate
// state
//     m_t = (W_mx x_t) ⊙ (W_mh h_{t-1})                       [B, H]
// which replaces h_{t-1} in the gate pre-activations.
//
// mLSTM:
//     i_t = σ(W_ix x_t + W_im m_t + b_i)
//     f_t = σ(W_fx x_t + W_fm m_t + b_f)
//     o_t = σ(W_ox x_t + W_om m_t + b_o)
//     u_t = tanh(W_ux x_t + W_um m_t + b_u)
//     c_t = f_t ⊙ c_{t-1} + i_t ⊙ u_t
//     h_t = o_t ⊙ tanh(c_t)
// mGRU:
//     z_t = σ(W_zx x_t + W_zm m_t + b_z)
//     r_t = σ(W_rx x_t + W_rm m_t + b_r)
//     n_t = tanh(W_nx x_t + b_nx + r_t ⊙ (W_nm m_t + b_nm))
//     h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
//
// Parameters (rows stacked in the order written; no bias on m_t):
//   mLSTM: weight_x [5H, I] = [W_mx; W_ix; W_fx; W_ox; W_ux], bias_x [4H] = [b_i; b_f; b_o; b_u],
//          weight_mh [H, H] = W_mh, weight_m [4H, H] = [W_im; W_fm; W_om; W_um].
//   mGRU:  weight_x [4H, I] = [W_mx; W_zx; W_rx; W_nx], bias_x [3H] = [b_z; b_r; b_nx],
//          weight_mh [H, H] = W_mh, weight_m [3H, H] = [W_zm; W_rm; W_nm], bias_m [H] = b_nm.
// All initialised ~ U(-1/sqrt(H), 1/sqrt(H)) like torch::nn::LSTM.
//
// Execution: the input projections of all T steps are one matrix product
// [T*B, I] x [I, k*H]; the time loop does only the recurrent part, two matrix products
// per step (h W_mh^T, then m [W_*m]^T fused over all gates).
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace distrnn::model {

// What a cell returns after a sequence: output[t] = h_t [T, B, H] (zero where masked
// out), the final h [B, H], and the final c [B, H] (mLSTM only, else undefined).
struct CellSequenceOutput {
  at::Tensor output;
  at::Tensor h;
  at::Tensor c;
};

// A multiplicative cell run over a sequence in one direction.
class MultiplicativeCell : public torch::nn::Module {
 public:
  MultiplicativeCell(int64_t input_size, int64_t hidden_size) : input_size_(input_size), hidden_size_(hidden_size) {}

  // input [T, B, I]; h0 [B, H]; c0 [B, H] for mLSTM (ignored by mGRU).
  // reverse: process t = T-1 .. 0 (output[t] is still the state after input[t]).
  // mask: optional bool [T, B, 1]; where false the step is skipped: the state is carried
  //   unchanged and output[t] is zero (variable-length batches: each sequence then gives
  //   exactly what it gives alone).
  virtual CellSequenceOutput Run(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0,
                                 bool reverse = false, const at::Tensor& mask = {}) = 0;
  virtual bool has_cell_state() const = 0;

  int64_t input_size() const { return input_size_; }
  int64_t hidden_size() const { return hidden_size_; }

  // Parameters, exposed so tests and checkpoints can address them by role.
  at::Tensor weight_x;   // [k*H, I]
  at::Tensor bias_x;     // [(k-1)*H]
  at::Tensor weight_mh;  // [H, H]
  at::Tensor weight_m;   // [(k-1)*H, H]

 protected:
  void RegisterCommon(int64_t gates);
  void ResetUniform();
  void CheckArgs(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& mask) const;
  // [T, B, I] -> [T, B, k*H]: all steps' input projections (with the input biases; the
  // m_x block has none) in one matrix product.
  at::Tensor ProjectInput(const at::Tensor& input) const;

  int64_t input_size_;
  int64_t hidden_size_;
};

class MlstmCell : public MultiplicativeCell {
 public:
  MlstmCell(int64_t input_size, int64_t hidden_size);
  CellSequenceOutput Run(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0, bool reverse = false,
                         const at::Tensor& mask = {}) override;
  bool has_cell_state() const override { return true; }
};

class MgruCell : public MultiplicativeCell {
 public:
  MgruCell(int64_t input_size, int64_t hidden_size);
  CellSequenceOutput Run(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0, bool reverse = false,
                         const at::Tensor& mask = {}) override;
  bool has_cell_state() const override { return false; }

  at::Tensor bias_m;  // [H] = b_nm
};

}  // namespace distrnn::model
