"""Prompt sets shared by the forward-pass and generation peer tests: English,
the name-match task template over many name pairs, code, and other scripts."""
import csv
import os

from tl_check import ROOT

ENGLISH = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "The quick brown fox jumps over the",
    "Water boils at a temperature of",
    "In 1969, the first humans landed on",
    "The best way to learn a new language is",
    "My favourite colour is blue because",
    "Photosynthesis is the process by which plants",
    "The three primary colours are red, yellow and",
    "To make a cup of tea, first you",
    "The largest planet in our solar system is",
    "She opened the door and saw",
    "Machine learning models are trained on",
    "The recipe calls for two cups of flour and",
    "If it rains tomorrow, we will",
    "The stock market fell sharply after",
    "Shakespeare wrote many plays, including",
    "The human heart has four",
    "A haiku is a short poem with",
    "Dear Sir or Madam, I am writing to",
    "The train to London leaves at",
    "Mount Everest is located in",
    "The meeting has been moved to Thursday because",
    "Please summarise the following paragraph:",
    "Q: What is two plus two?\nA:",
    "List three fruits: apple, banana,",
    "The opposite of hot is",
    "Monday, Tuesday, Wednesday,",
    "He was born in Paris and moved to",
    "Climate change is caused by",
]

CODE = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "#include <stdio.h>\n\nint main(void) {\n    printf(",
    "for i in range(10):\n    print(",
    "SELECT name, age FROM users WHERE",
    "function add(a, b) {\n  return",
    "import numpy as np\nx = np.",
    "class Stack:\n    def __init__(self):\n        self.items =",
    "const express = require('express');\nconst app =",
    "fn main() {\n    let v: Vec<i32> =",
    "<html>\n<head>\n<title>",
    "git commit -m \"",
    "x = [1, 2, 3]\ny = [i * 2 for i in",
    "public static void main(String[] args) {\n    System.out.",
    "{\"name\": \"Alice\", \"age\":",
    "#!/bin/bash\nfor f in *.txt; do\n    echo",
]

OTHER_SCRIPTS = [
    "Москва — столица",
    "Я люблю читать книги, потому что",
    "東京は日本の",
    "我喜欢吃",
    "नमस्ते, मेरा नाम",
    "Ελλάδα είναι μια χώρα",
    "مرحبا، كيف",
    "La capitale de l'Allemagne est",
    "Der schnelle braune Fuchs springt über",
    "El perro corre por el",
    "Olá, tudo bem? Eu sou",
    "Wszystkie dzieci lubią",
    "Türkiye'nin başkenti",
    "서울은 한국의",
    "ภาษาไทยเป็น",
]


def namematch_prompts(n):
    root = os.path.join(ROOT, "tasks", "namematch")
    with open(os.path.join(root, "template.txt"), encoding="utf-8") as f:
        template = f.read()
    out = []
    with open(os.path.join(root, "data", "raw.csv"), encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i % 7 == 0:  # spread over the file's categories and regions
                out.append(template.replace("<elected_name>", row["elected_name"])
                           .replace("<partner_name>", row["partner_name"]))
            if len(out) == n:
                break
    return out


def all_prompts(n_names=45):
    return ENGLISH + CODE + OTHER_SCRIPTS + namematch_prompts(n_names)
