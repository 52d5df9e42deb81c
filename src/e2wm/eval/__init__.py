"""Evaluation on the E2WM benchmark: multiple-choice QA by log-likelihood, generation by ROUGE/LCS, perplexity."""
