#include "support/corpus.h"

namespace distrnn::testing {

std::string SmallWordCorpus(int lines, int offset) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "<unk>", "N"};
  std::string text;
  for (int i = 0; i < lines; ++i) {
    for (int j = 0; j < 6; ++j) text += std::string(" ") + kWords[(i * 3 + j * 7 + offset) % 10];
    text += " \n";
  }
  return text;
}

std::string TinyLmCorpus(int lines, int offset) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "<unk>", "N", "big", "red"};
  std::string text;
  for (int i = 0; i < lines; ++i) {
    for (int j = 0; j < 7; ++j) text += std::string(" ") + kWords[(i * 5 + j * 7 + offset + i / 3) % 12];
    text += " \n";
  }
  return text;
}

void WritePtbCorpus(const TempDir& dir, std::string (*corpus)(int lines, int offset), int train_lines,
                    int eval_lines) {
  dir.WriteFile("data/ptb/ptb.train.txt", corpus(train_lines, 0));
  dir.WriteFile("data/ptb/ptb.valid.txt", corpus(eval_lines, 1));
  dir.WriteFile("data/ptb/ptb.test.txt", corpus(eval_lines, 2));
}

}  // namespace distrnn::testing
