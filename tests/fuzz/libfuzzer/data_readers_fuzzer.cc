// libFuzzer harness for the data readers (issue 8; optional, not in CI):
//
//   tests/fuzz/libfuzzer/build.sh            # clang++ -fsanitize=fuzzer,address,undefined
//   build-libfuzzer/data_readers_fuzzer -max_total_time=600 build-libfuzzer/corpus
//
// The first byte picks the reader, the rest is the file's content. Every reader must
// return a status (never throw or crash), and an accepted vocabulary must be storable as
// JSON (the checkpoint header), the invariant the mutation fuzzer (fuzz_test.cc) checks too.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/char_corpus.h"
#include "data/compressed_file.h"
#include "data/glove.h"
#include "data/imdb.h"
#include "data/utf8.h"
#include "data/word_corpus.h"

namespace {

const std::string& Dir() {
  static const std::string dir = [] {
    char pattern[] = "/tmp/distrnn_libfuzzer_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    return std::string(pattern);
  }();
  return dir;
}

std::string Write(const std::string& name, const std::string& contents) {
  const std::string path = Dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

void CheckJson(const std::vector<std::string>& tokens) {
  nlohmann::json(tokens).dump();  // throws (and so fails the run) on invalid UTF-8
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  using namespace distrnn::data;
  switch (data[0] % 7) {
    case 0: {
      (void)CheckUtf8(text, "input");
      auto chars = SplitUtf8(text, "input");
      if (chars.ok()) CheckJson(*chars);
      break;
    }
    case 1: {  // a PTB directory whose three splits hold the input
      for (const char* split : {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"}) Write(split, text);
      auto corpus = LoadPtbCorpus(Dir());
      if (corpus.ok()) CheckJson(corpus->vocab.tokens());
      break;
    }
    case 2: {
      auto corpus = LoadCharCorpus(Write("chars.txt", text), 0.5);
      if (corpus.ok()) CheckJson(corpus->vocab.tokens());
      break;
    }
    case 3: {  // plain or gzip (recognised by its magic bytes)
      auto reviews = ReadLabeledTsv(Write("train.tsv", text));
      if (reviews.ok()) {
        std::vector<std::vector<std::string>> tokens;
        for (const auto& r : *reviews) tokens.push_back(TokenizeReview(r.text));
        auto vocab = BuildImdbVocabulary(tokens, 100);
        if (vocab.ok()) CheckJson(vocab->tokens());
      }
      break;
    }
    case 4: {
      const Vocabulary vocab({"<pad>", "<unk>", "the", "film", "caf\xC3\xA9"});
      (void)LoadGloveEmbeddings(Write("glove.txt", text), vocab, data[0] % 2 ? 0 : 3);
      break;
    }
    case 5:
      (void)ReadMaybeCompressedFile(Write("any.gz", text), /*allow_empty=*/true);
      break;
    default:
      (void)TokenizeReview(text);
      break;
  }
  return 0;
}
