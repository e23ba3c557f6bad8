#include "model/model_config.h"

#include "absl/strings/str_cat.h"

namespace distrnn::model {

absl::StatusOr<CellType> ParseCellType(const std::string& name) {
  if (name == "rnn_tanh") return CellType::kRnnTanh;
  if (name == "rnn_relu") return CellType::kRnnRelu;
  if (name == "lstm") return CellType::kLstm;
  if (name == "gru") return CellType::kGru;
  if (name == "mlstm") return CellType::kMlstm;
  if (name == "mgru") return CellType::kMgru;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown cell type '", name, "' (expected rnn_tanh, rnn_relu, lstm, gru, mlstm or mgru)"));
}

const char* CellTypeName(CellType cell) {
  switch (cell) {
    case CellType::kRnnTanh: return "rnn_tanh";
    case CellType::kRnnRelu: return "rnn_relu";
    case CellType::kLstm: return "lstm";
    case CellType::kGru: return "gru";
    case CellType::kMlstm: return "mlstm";
    case CellType::kMgru: return "mgru";
  }
  return "?";
}

absl::Status StackConfig::Validate() const {
  if (input_size < 1) return absl::InvalidArgumentError(absl::StrCat("input size must be positive, got ", input_size));
  if (hidden_size < 1) return absl::InvalidArgumentError(absl::StrCat("--hidden_size must be positive, got ", hidden_size));
  if (num_layers < 1) return absl::InvalidArgumentError(absl::StrCat("--num_layers must be positive, got ", num_layers));
  if (dropout < 0.0 || dropout >= 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("--dropout must be in [0, 1), got ", dropout));
  }
  return absl::OkStatus();
}

absl::Status LanguageModelConfig::Validate() const {
  if (vocab_size < 1) return absl::InvalidArgumentError("vocabulary is empty");
  if (embedding_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--embedding_size must be positive, got ", embedding_size));
  }
  StackConfig with_input = stack;  // the model sets input_size = embedding_size itself
  with_input.input_size = embedding_size;
  if (absl::Status s = with_input.Validate(); !s.ok()) return s;
  if (dropout < 0.0 || dropout >= 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("--dropout must be in [0, 1), got ", dropout));
  }
  if (init_scale <= 0.0) return absl::InvalidArgumentError(absl::StrCat("--init_scale must be positive, got ", init_scale));
  if (tie_weights && embedding_size != stack.hidden_size * stack.num_directions()) {
    return absl::InvalidArgumentError(absl::StrCat("--tie_weights needs embedding_size (", embedding_size,
                                                   ") == hidden_size (", stack.hidden_size, ")"));
  }
  return absl::OkStatus();
}

absl::Status ClassifierConfig::Validate() const {
  if (vocab_size < 1) return absl::InvalidArgumentError("vocabulary is empty");
  if (embedding_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--embedding_size must be positive, got ", embedding_size));
  }
  StackConfig with_input = stack;
  with_input.input_size = embedding_size;
  if (absl::Status s = with_input.Validate(); !s.ok()) return s;
  if (dropout < 0.0 || dropout >= 1.0) {
    return absl::InvalidArgumentError(absl::StrCat("--dropout must be in [0, 1), got ", dropout));
  }
  if (num_classes < 1) return absl::InvalidArgumentError(absl::StrCat("--num_classes must be positive, got ", num_classes));
  if (padding_idx < 0 || padding_idx >= vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("padding index ", padding_idx, " is outside the vocabulary [0, ", vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace distrnn::model
