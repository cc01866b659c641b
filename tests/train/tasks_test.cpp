// Tasks, rewards and GRPO's advantage normalization: the rule-based parts of RL.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "common/error.h"
#include "train/chat_vocab.h"
#include "train/tasks.h"
#include "train/train.h"

using namespace mlamoe::train;

TEST(Tasks, WorkedSolutionsEarnFullReward) {
  std::mt19937_64 rng(7);
  for (TaskKind kind : {TaskKind::Arith, TaskKind::Countdown})
    for (int i = 0; i < 2000; ++i) {
      Problem p = training_problem(kind, rng);
      Reward r = score(p, p.solution);
      ASSERT_TRUE(r.well_formed) << p.prompt << " " << p.solution;
      ASSERT_TRUE(r.correct) << p.prompt << " " << p.solution;
      EXPECT_DOUBLE_EQ(r.total(), 1.1);
    }
}

TEST(Tasks, ArithmeticScratchIsColumnArithmetic) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    Problem p = training_problem(TaskKind::Arith, rng);
    // The answer after </think> is the true value of the expression in the prompt.
    std::string expr = p.prompt.substr(8, p.prompt.size() - 9);  // "What is " ... "?"
    auto v = evaluate_expression(expr);
    ASSERT_TRUE(v.has_value()) << expr;
    ASSERT_EQ(v->value, p.target) << expr;
    ASSERT_EQ(p.solution.substr(p.solution.find("</think>") + 8), std::to_string(p.target));
  }
}

TEST(Tasks, HeldOutProblemsAreNeverTrainedOn) {
  auto held = held_out_set(TaskKind::Arith, 300, 1);
  std::set<std::string> held_prompts;
  for (auto& p : held) {
    EXPECT_TRUE(is_held_out(p));
    held_prompts.insert(p.prompt);
  }
  std::mt19937_64 rng(11);
  for (int i = 0; i < 20000; ++i) ASSERT_FALSE(held_prompts.count(training_problem(TaskKind::Arith, rng).prompt));
  // Same seed, same set; another seed, another set.
  EXPECT_EQ(held_out_set(TaskKind::Arith, 300, 1)[17].prompt, held[17].prompt);
  int same = 0;
  auto other = held_out_set(TaskKind::Arith, 300, 2);
  for (int i = 0; i < 300; ++i) same += other[i].prompt == held[i].prompt;
  EXPECT_LT(same, 30);
}

TEST(Tasks, DigitsBoundTheOperandsAndKeepTheHeldOutSplit) {
  std::mt19937_64 rng(5);
  std::set<int64_t> seen;
  for (int i = 0; i < 3000; ++i) {
    Problem p = training_problem(TaskKind::Arith, rng, 2);
    EXPECT_FALSE(is_held_out(p));
    std::string expr = p.prompt.substr(8, p.prompt.size() - 9);
    size_t op = expr.find_first_of("+-");
    int64_t a = std::stoll(expr.substr(0, op)), b = std::stoll(expr.substr(op + 1));
    ASSERT_LT(a, 100) << p.prompt;
    ASSERT_LT(b, 100) << p.prompt;
    seen.insert(a), seen.insert(b);
    ASSERT_TRUE(score(p, p.solution).correct) << p.prompt;
  }
  EXPECT_TRUE(seen.count(0) && seen.count(7) && seen.count(10) && seen.count(99));  // both lengths, both ends
  for (auto& p : held_out_set(TaskKind::Arith, 200, 3, 2)) {
    EXPECT_TRUE(is_held_out(p));
    EXPECT_LE(p.prompt.size(), std::string("What is 99+99?").size()) << p.prompt;
  }
  EXPECT_THROW(held_out_set(TaskKind::Arith, 1, 1, 0), mlamoe::Error);
}

TEST(Rewards, FormatAndCorrectnessAreJudgedSeparately) {
  Problem p;
  p.kind = TaskKind::Arith;
  p.target = 132;
  EXPECT_DOUBLE_EQ(score(p, "<think>7+5=12,4+8+1=13</think>132").total(), 1.1);
  EXPECT_DOUBLE_EQ(score(p, "<think>wrong</think>131").total(), 0.1);  // well-formed, wrong
  EXPECT_DOUBLE_EQ(score(p, "132").total(), 0.0);                       // no reasoning block
  EXPECT_DOUBLE_EQ(score(p, "<think>x</think>").total(), 0.0);          // no answer
  EXPECT_DOUBLE_EQ(score(p, "<think>x</think>132<think>").total(), 0.0);
  EXPECT_DOUBLE_EQ(score(p, "<think>x</think>0132x").total(), 0.1);
}

TEST(Rewards, CountdownChecksValueAndNumberUse) {
  Problem p;
  p.kind = TaskKind::Countdown;
  p.numbers = {3, 7, 25};
  p.target = 46;
  EXPECT_TRUE(score(p, "<think>.</think>3*7+25").correct);
  EXPECT_FALSE(score(p, "<think>.</think>(25-3)*7/7+24").correct);  // 7 twice, 24 not given
  EXPECT_FALSE(score(p, "<think>.</think>46").correct);                      // 46 is not a given number
  EXPECT_FALSE(score(p, "<think>.</think>3*7+25+0").correct);
  EXPECT_FALSE(score(p, "<think>.</think>3*(7+25").correct);
  p.numbers = {4, 2, 9};
  p.target = 11;
  EXPECT_TRUE(score(p, "<think>.</think>4/2+9").correct);
  EXPECT_FALSE(score(p, "<think>.</think>9/2+4").correct);  // inexact division
}

TEST(Expressions, PrecedenceParenthesesAndErrors) {
  EXPECT_EQ(evaluate_expression("2+3*4")->value, 14);
  EXPECT_EQ(evaluate_expression("(2+3)*4")->value, 20);
  EXPECT_EQ(evaluate_expression("20-4-3")->value, 13);
  EXPECT_EQ(evaluate_expression("8/4/2")->value, 1);
  EXPECT_FALSE(evaluate_expression("1/0").has_value());
  EXPECT_FALSE(evaluate_expression("").has_value());
  EXPECT_FALSE(evaluate_expression("2+").has_value());
  EXPECT_FALSE(evaluate_expression(std::string(100, '(') + "1" + std::string(100, ')')).has_value());
  EXPECT_FALSE(evaluate_expression("99999*99999*99999").has_value());
}

TEST(Grpo, AdvantagesAreNormalizedWithinTheGroup) {
  auto a = group_advantages({1.1, 0.1, 0.1, 0.0, 1.1, 0.1});
  double mean = 0, var = 0;
  for (double x : a) mean += x / a.size();
  for (double x : a) var += (x - mean) * (x - mean) / a.size();
  EXPECT_NEAR(mean, 0.0, 1e-12);
  EXPECT_NEAR(var, 1.0, 1e-12);
  EXPECT_GT(a[0], 0);
  EXPECT_LT(a[3], a[1]);
  EXPECT_DOUBLE_EQ(a[0], a[4]);
  for (double x : group_advantages({0.1, 0.1, 0.1})) EXPECT_EQ(x, 0.0);  // no signal, no push
  auto two = group_advantages({1.0, 0.0});
  EXPECT_DOUBLE_EQ(two[0], 1.0);
  EXPECT_DOUBLE_EQ(two[1], -1.0);
}

TEST(ChatVocab, BytesAndControlTokensRoundTrip) {
  std::string text = "<｜User｜>What is 2+2?<｜Assistant｜><think>2+2=4</think>4<｜end▁of▁sentence｜>";
  auto ids = ChatVocab::encode(text);
  EXPECT_EQ(ids.front(), ChatVocab::kUser);
  EXPECT_EQ(ids.back(), ChatVocab::kEos);
  EXPECT_EQ(ChatVocab::decode(ids), text);
  EXPECT_EQ(ChatVocab::encode("é<x>")[0], 0xC3);  // bytes, not characters
  EXPECT_EQ(ChatVocab::token_strings()[' '], "Ġ");  // GPT-2 byte-to-unicode
  EXPECT_EQ(ChatVocab::token_strings()['A'], "A");
  EXPECT_EQ(ChatVocab::token_strings().size(), size_t(ChatVocab::kSize));
}
