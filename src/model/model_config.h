// Model hyperparameters shared by the language model and the classifier, validated once.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distrnn::model {

enum class CellType { kRnnTanh, kRnnRelu, kLstm, kGru, kMlstm, kMgru };

absl::StatusOr<CellType> ParseCellType(const std::string& name);
const char* CellTypeName(CellType cell);
// LSTM-like cells carry a cell state c besides h.
inline bool HasCellState(CellType cell) { return cell == CellType::kLstm || cell == CellType::kMlstm; }

struct StackConfig {
  CellType cell = CellType::kLstm;
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  double dropout = 0.0;  // between layers only (non-recurrent connections)
  bool bidirectional = false;
  // LSTM on the CPU: our layer kernel (fused_lstm_layer.h) instead of libtorch's. Same
  // parameters and results; a speed choice, not part of the model (not checkpointed).
  bool fused_cpu_lstm = false;

  int64_t num_directions() const { return bidirectional ? 2 : 1; }
  absl::Status Validate() const;
};

struct LanguageModelConfig {
  int64_t vocab_size = 0;
  int64_t embedding_size = 0;
  StackConfig stack;       // input_size = embedding_size
  double dropout = 0.0;    // on the embedding output and the stack output
  double init_scale = 0.1; // every parameter ~ U(-init_scale, init_scale)
  // Instead of init_scale: libtorch's own initialisation of each module, what a PyTorch
  // script gets (embedding N(0, 1); recurrent and decoder weights and biases
  // U(+-1/sqrt(fan in)); a tied decoder's bias 0).
  bool torch_init = false;
  bool tie_weights = false;

  absl::Status Validate() const;
};

// Sequence classifier (classifier.h): embedding -> stack -> last layer's final states -> linear.
struct ClassifierConfig {
  int64_t vocab_size = 0;
  int64_t embedding_size = 0;
  StackConfig stack;         // input_size = embedding_size
  double dropout = 0.0;      // on the embedding output and on the pooled final states
  int64_t num_classes = 1;   // 1 = binary, a single logit (BCE-with-logits); K >= 2 = K logits
  int64_t padding_idx = 0;   // token id of <pad>: its embedding row is zero and gets no gradient

  absl::Status Validate() const;
};

}  // namespace distrnn::model
