#include "tokenizer/sample_text.h"

#include <random>
#include <vector>

namespace mlamoe {

namespace {
const std::vector<const char*>& paragraphs() {
  static const std::vector<const char*> p = {
      "深度求索公司发布了新一代混合专家语言模型，该模型采用多头潜在注意力机制，将键值缓存压缩为低秩潜在向量，"
      "从而在推理阶段显著降低显存占用。与传统的多头注意力相比，潜在注意力在保持模型质量的同时，把每个词元需要缓存的字节数减少了百分之九十以上。",
      "在专家混合层中，每个词元除了经过共享专家之外，还会根据路由分数被分配给若干个路由专家。为了避免负载不均衡，"
      "模型为每个专家维护一个偏置项，只用于选择专家，而不参与加权求和；训练过程中根据专家的负载动态调整这个偏置。",
      "长文本理解一直是自然语言处理中的难题。《红楼梦》开篇写道：“满纸荒唐言，一把辛酸泪！都云作者痴，谁解其中味？”"
      "这段文字常被用来说明作者创作时复杂的心境。今天，我们用它来测试分词器在处理中文标点、引号和书名号时是否正确。",
      "北京时间2024年12月26日，模型在数学、代码和推理等基准上取得了与闭源模型相当的成绩：MATH-500得分90.2，"
      "Codeforces百分位51.6，训练总成本约为557.6万美元，共使用了278.8万个H800 GPU小时。",
      "人工智能的发展离不开算力、数据和算法三个要素。随着硬件带宽的提升，解码速度主要受限于内存带宽，"
      "因此每生成一个词元需要搬运的字节数成为衡量推理系统效率的关键指标。",
      "The quick brown fox jumps over the lazy dog. DeepSeek-V3 is a strong Mixture-of-Experts (MoE) language model "
      "with 671B total parameters, of which 37B are activated for each token.",
      "To achieve efficient inference and cost-effective training, it adopts Multi-head Latent Attention (MLA) and "
      "DeepSeekMoE architectures, which were thoroughly validated in DeepSeek-V2. It's what they'd call \"frugal\" — isn't it?",
      "def route(scores, bias, k=8):\n    # pick experts by biased score, weight by the raw score\n    idx = (scores + bias).topk(k).indices\n"
      "    w = scores.gather(-1, idx)\n    return idx, w / w.sum(-1, keepdim=True)\n",
      "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];  // dot product\n}\nreturn sum;\n",
      "日本語のテキストも含めます。ひらがな、カタカナ、そして漢字が混在しています。東京は日本の首都です。",
      "한국어 문장도 포함합니다. 토크나이저는 모든 언어를 정확하게 처리해야 합니다.",
      "Пример текста на русском языке: токенизатор должен корректно обрабатывать кириллицу.",
      "Ελληνικά: Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
      "العربية: هذا نص تجريبي لاختبار المحلل.",
      "Emoji 🚀🦙😶‍🌫️ and symbols ✅ ½ ¾ № ™ © ® ∑ ∫ √ ∞ ≠ ≤ ≥ — plus full-width ＡＢＣ１２３！？",
      "Numbers: 3 33 333 3333 3.14159 1,000,000 0x7fff 1e-6 ٣٤٥ ⅫⅣ",
      "   Leading spaces, trailing spaces   \n\n\n\tTabs\tand\r\nCRLF lines  \n",
      "混合文本：GPT-4o和Claude以及DeepSeek-R1都是大模型（LLM），它们的上下文长度分别为128K、200K和128K。",
  };
  return p;
}
}  // namespace

std::string mixed_language_sample(size_t approx_bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto& p = paragraphs();
  std::uniform_int_distribution<size_t> pick(0, p.size() - 1), sep(0, 5);
  std::string out;
  out.reserve(approx_bytes + 1024);
  static const char* separators[] = {" ", "\n", "\n\n", "", "  ", "。"};
  while (out.size() < approx_bytes) {
    // Chinese paragraphs twice as often: the benchmark text is Chinese-heavy.
    size_t i = pick(rng);
    if (i >= 5 && (rng() & 1)) i = rng() % 5;
    out += p[i];
    out += separators[sep(rng)];
  }
  return out;
}

}  // namespace mlamoe
