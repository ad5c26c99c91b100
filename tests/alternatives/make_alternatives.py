"""Build the corpus of correct alternatives: designs the instructions allow, each earning full marks.

A competent student who knows PyTorch reads each exercise and may build the answer another way than
the reference: store the momentum buffer as the state entry itself, update a parameter in place,
build the networks from ``nn.Sequential`` or ``nn.ModuleList`` with ReLU, Flatten and LogSoftmax
modules, leave out the bias of a linear layer that batch normalization follows, count parameters
with a loop or NumPy, round the megabytes to what the tests accept. Each notebook here starts from
the reference submission (``filled`` of ``tests/mutants/make_submissions.py``) and replaces one
part of one answer by such a design; ``expected.json`` lists full points on every autograded cell.

    python tests/alternatives/make_alternatives.py            # rewrite the committed corpus
    python tests/alternatives/make_alternatives.py --out DIR
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for path in (REPO, REPO / "tests" / "mutants"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from make_submissions import (  # noqa: E402
    COPIES, COUNT_ALL, M_RULE, MB_FORMULA, W_RULE, Mutation, expected_scores, filled, json_bytes,
    mutation, notebook_bytes)

CORPUS_DIR = Path("tests") / "alternatives"

STEP_BODY = '''                state = self.state[p]
                m = state.get("momentum", torch.zeros_like(p))
                w_new, state["momentum"] = momentum_update(p, p.grad, m, group["lr"], group["beta"])
                p.copy_(w_new)
'''
INIT = '''        super().__init__(params, dict(lr=lr, beta=beta))
'''
BN_SHALLOW = '''        self.fc1 = nn.Linear(784, 128)
        self.bn1 = nn.BatchNorm1d(128)
        self.dropout = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)
'''
BN_DEEP_LAYERS = '''        self.fc1 = nn.Linear(784, 128)
        self.bn1 = nn.BatchNorm1d(128)
        self.fc2 = nn.Linear(128, 64)
        self.bn2 = nn.BatchNorm1d(64)
        self.fc3 = nn.Linear(64, 32)
        self.bn3 = nn.BatchNorm1d(32)
        self.fc4 = nn.Linear(32, 32)
        self.bn4 = nn.BatchNorm1d(32)
'''

# design name -> (what a student did, the changes to the reference answer)
DESIGNS: dict[str, tuple[str, tuple[Mutation, ...]]] = {
    "ex3_state_entry_is_the_buffer": (
        "keeps each buffer as the state entry itself, self.state[p] = m_new, as the exercise's words allow",
        (mutation("ex3_momentum", STEP_BODY,
                  '''                m = self.state[p] if isinstance(self.state[p], torch.Tensor) else torch.zeros_like(p)
                w_new, m_new = momentum_update(p, p.grad, m, group["lr"], group["beta"])
                self.state[p] = m_new
                p.copy_(w_new)
'''),)),
    "ex3_momentum_buffer_key_and_in_place_add": (
        "names the buffer momentum_buffer as torch.optim.SGD does, and updates the parameter with add_",
        (mutation("ex3_momentum", STEP_BODY,
                  '''                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                w_new, state["momentum_buffer"] = momentum_update(p, p.grad, state["momentum_buffer"],
                                                                  group["lr"], group["beta"])
                p.add_(w_new - p)
'''),)),
    "ex3_buffers_made_in_init": (
        "creates every buffer (zeros) in __init__ and reads it in step()",
        (mutation("ex3_momentum", INIT, INIT + '''        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["m"] = torch.zeros_like(p)
'''),
         mutation("ex3_momentum", STEP_BODY,
                  '''                state = self.state[p]
                w_new, state["m"] = momentum_update(p, p.grad, state["m"], group["lr"], group["beta"])
                p.data.copy_(w_new)
'''))),
    "ex3_rule_with_torch_add_and_sub": (
        "writes the rule with torch.add(..., alpha=beta) and torch.sub(..., alpha=lr)",
        (mutation("ex3_momentum", M_RULE, "m_new = torch.add(grad, m, alpha=beta)\n"),
         mutation("ex3_momentum", W_RULE, "w_new = torch.sub(w, m_new, alpha=lr)\n"))),
    "ex3_rule_on_clones_in_place": (
        "computes the rule in place on clones of its inputs (m.clone().mul_(beta).add_(grad))",
        (mutation("ex3_momentum", M_RULE, "m_new = m.clone().mul_(beta).add_(grad)\n"),
         mutation("ex3_momentum", W_RULE, "w_new = w.clone().sub_(lr * m_new)\n"))),
    "ex2_sequential_with_modules": (
        "builds each network as one nn.Sequential with Flatten, ReLU and LogSoftmax modules",
        (mutation("ex2_bn_models", BN_SHALLOW, '''        self.layers = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(128, 10), nn.LogSoftmax(dim=1))
'''),
         mutation("ex2_bn_models", '''        x = torch.flatten(x, 1)
        x = F.relu(self.bn1(self.fc1(x)))
        x = self.fc2(self.dropout(x))
        return F.log_softmax(x, dim=1)
''', '''        return self.layers(x.reshape(len(x), -1))
'''))),
    "ex2_relu_modules_and_view": (
        "uses nn.ReLU modules (one module, called after every layer), x.view and the log_softmax method",
        (mutation("ex2_bn_models", '''        self.fc5 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        for layer in (self.fc1, self.fc2, self.fc3, self.fc4):
            x = F.relu(layer(x))
''', '''        self.fc5 = nn.Linear(32, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = x.view(x.size(0), -1)
        for layer in (self.fc1, self.fc2, self.fc3, self.fc4):
            x = self.relu(layer(x))
'''),
         mutation("ex2_bn_models", '''        x = self.fc5(self.dropout(x))
        return F.log_softmax(x, dim=1)


class BNDeepNet''', '''        return self.fc5(self.dropout(x)).log_softmax(dim=-1)


class BNDeepNet'''))),
    "ex2_modulelist_blocks": (
        "builds BNDeepNet's hidden layers in a loop into an nn.ModuleList of linear, batch norm and ReLU blocks",
        (mutation("ex2_bn_models", BN_DEEP_LAYERS, '''        widths = [784, 128, 64, 32, 32]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())
            for n_in, n_out in zip(widths[:-1], widths[1:]))
'''),
         mutation("ex2_bn_models", '''        pairs = [(self.fc1, self.bn1), (self.fc2, self.bn2), (self.fc3, self.bn3), (self.fc4, self.bn4)]
        for linear, norm in pairs:
            x = F.relu(norm(linear(x)))
''', '''        for block in self.blocks:
            x = block(x)
'''))),
    "ex2_no_bias_before_batchnorm": (
        "leaves out the bias of each linear layer that batch normalization follows (BN's shift replaces it)",
        (mutation("ex2_bn_models", BN_SHALLOW, BN_SHALLOW.replace("nn.Linear(784, 128)", "nn.Linear(784, 128, bias=False)")),
         mutation("ex2_bn_models", BN_DEEP_LAYERS,
                  BN_DEEP_LAYERS.replace("nn.Linear(784, 128)", "nn.Linear(784, 128, bias=False)")
                  .replace("nn.Linear(128, 64)", "nn.Linear(128, 64, bias=False)")
                  .replace("nn.Linear(64, 32)", "nn.Linear(64, 32, bias=False)")
                  .replace("nn.Linear(32, 32)", "nn.Linear(32, 32, bias=False)")))),
    "ex1_loop_and_power_of_ten": (
        "counts with a loop over named_parameters and divides by 10**6",
        (mutation("ex1_memory", COUNT_ALL, "total = 0\n    for _, parameter in model.named_parameters():\n"
                                           "        total += parameter.numel()\n    return total"),
         mutation("ex1_memory", MB_FORMULA, "return copies * count_parameters(model) * bytes_per_value / 10**6"))),
    "ex1_numpy_count_and_rounded_megabytes": (
        "counts with numpy.sum (a NumPy integer) and rounds the megabytes to two decimals, as the tests allow",
        (mutation("ex1_memory", COUNT_ALL, "return np.sum([p.numel() for p in model.parameters()])"),
         mutation("ex1_memory", "megabytes_1 = training_memory_mb(Net())",
                  "megabytes_1 = round(training_memory_mb(Net()), 2)"),
         mutation("ex1_memory", "megabytes_2 = training_memory_mb(Net(), batch_size=50)",
                  "megabytes_2 = round(training_memory_mb(Net(), batch_size=50), 2)"))),
    "ex1_memory_in_one_expression": (
        "writes the megabytes in one expression over bytes, (3 + b) * P * bytes / 1e6",
        (mutation("ex1_memory", f"    {COPIES}\n    {MB_FORMULA}",
                  "    return (3 + batch_size) * count_parameters(model) * bytes_per_value / 1_000_000"),)),
}


def build() -> dict[Path, bytes]:
    files: dict[Path, bytes] = {}
    expected = {}
    for name, (design, mutations) in DESIGNS.items():
        files[CORPUS_DIR / f"{name}.ipynb"] = notebook_bytes(filled(mutations))
        expected[name] = {"design": design, "scores": expected_scores(())}
    files[CORPUS_DIR / "expected.json"] = json_bytes(expected)
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO, help="root to write under (default: the repository)")
    args = parser.parse_args(argv)
    for relative, content in build().items():
        path = args.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(path)


if __name__ == "__main__":
    main()
