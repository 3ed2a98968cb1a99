"""The articles' worked examples, shipped as named scenarios.

Each scenario is a complete network (a spec ending in a loss), explicit small parameters, one
input and its target, with a title and a short note in English and Simplified Chinese. The
numbers are small integers (or halves) so that a learner can redo every step by hand;
`docs/scenarios.md` lists the numbers to look at, and `tests/cnncore/test_scenarios.py` checks
each of them by hand and against PyTorch.

    s = get("correlate-convolve")
    trace = s.trace()                  # = s.network().trace(s.input, s.target)
    payload = s.to_dict()              # JSON-ready

Layouts are PyTorch's: `input` is C×H×W, conv `w` is (out_channels, in_channels, kH, kW),
dense `w` is (units, in_features). `params` has one dict per layer, {} for layers without
parameters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from .network import Network, Trace


@dataclass(frozen=True)
class Scenario:
    id: str
    title: dict[str, str]
    note: dict[str, str]
    spec: dict
    params: list[dict]
    input: list
    target: Any

    def network(self) -> Network:
        """A fresh network with this scenario's parameters (the scenario is never mutated)."""
        return Network.from_spec(copy.deepcopy(self.spec), params=copy.deepcopy(self.params))

    def trace(self) -> Trace:
        """Forward and backward pass of the scenario's input and target, every tensor recorded."""
        return self.network().trace(np.array(self.input, dtype=np.float64), self.target)

    def to_dict(self) -> dict:
        """JSON-ready copy: id, title, note, spec, params, input, target."""
        return copy.deepcopy(
            {
                "id": self.id,
                "title": self.title,
                "note": self.note,
                "spec": self.spec,
                "params": self.params,
                "input": self.input,
                "target": self.target,
            }
        )


def _conv(out_channels: int, kernel_size: int, **kw: Any) -> dict:
    return {"type": "conv2d", "out_channels": out_channels, "kernel_size": kernel_size, **kw}


_FLATTEN = {"type": "flatten"}

# --------------------------------------------------------------------------- 1. conv → dense

_CONV_DENSE = Scenario(
    id="conv-dense",
    title={
        "en": "One conv filter, then a dense output",
        "zh": "一个卷积核，后接一个全连接输出",
    },
    note={
        "en": (
            "A 2×2 filter slides over the 3×3 input and gives four values; they are flattened "
            "and one dense unit weighs and adds them, and the MSE loss compares the result 7 "
            "with the target 5. Backward, δ = 7 − 5 = 2 flows back through the dense weights, "
            "so the conv layer's δ is simply 2 × [1, −1, 1, 2]. Look at dC/dw: every filter "
            "weight touched all four positions (parameter sharing), so its gradient is a sum "
            "of four products input × δ, and dC/db is the sum of the four δ values, not their "
            "average."
        ),
        "zh": (
            "2×2 卷积核在 3×3 输入上滑动，得到 4 个值；把它们展平后，由一个全连接单元加权求和，"
            "再用 MSE 把结果 7 和目标 5 比较。反向时，δ = 7 − 5 = 2 沿全连接权重传回来，"
            "所以卷积层的 δ 就是 2 × [1, −1, 1, 2]。重点看 dC/dw：每个卷积核权重都参与了全部"
            " 4 个位置的计算（参数共享），所以它的梯度是 4 个“输入 × δ”之和；"
            "dC/db 是 4 个 δ 的和，而不是平均。"
        ),
    },
    spec={
        "input_shape": [1, 3, 3],
        "layers": [_conv(1, 2), _FLATTEN, {"type": "dense", "units": 1}],
        "loss": "mse",
    },
    params=[
        {"w": [[[[1, -1], [2, 0]]]], "b": [1]},
        {},
        {"w": [[1, -1, 1, 2]], "b": [-1]},
    ],
    input=[[[1, 2, 0], [3, 1, 2], [0, 1, 3]]],
    target=[5],
)

# --------------------------------------------------------------------------- 2. two convs

_TWO_CONV = Scenario(
    id="two-conv",
    title={
        "en": "Two conv layers in a row",
        "zh": "两个卷积层串联",
    },
    note={
        "en": (
            "The first scenario with a second 2×2 conv between the first one and the dense "
            "output, on a 4×4 input (4×4 → 3×3 → 2×2 → 1). The second conv's dC/da_prev is the "
            "full convolution of its δ with its filter: each cell of the 3×3 map collects w·δ "
            "from every window that covered it. The first conv uses ReLU, so where its z was "
            "negative the gate is closed: dC/dz = dC/da ⊙ relu′(z) is 0 there even when dC/da "
            "is not, and those cells add nothing to dC/dw."
        ),
        "zh": (
            "和第一个场景相同，只是在第一个卷积层和全连接输出之间又加了一个 2×2 卷积层，"
            "输入是 4×4（4×4 → 3×3 → 2×2 → 1）。第二个卷积层的 dC/da_prev 是它的 δ 与卷积核的"
            "完全卷积：3×3 特征图里的每个格子，从每个覆盖过它的窗口各收到一份 w·δ。"
            "第一个卷积层用 ReLU，z 为负的位置“门”是关着的：即使 dC/da 不为 0，"
            "dC/dz = dC/da ⊙ relu′(z) 在那里也是 0，对 dC/dw 毫无贡献。"
        ),
    },
    spec={
        "input_shape": [1, 4, 4],
        "layers": [
            _conv(1, 2, activation="relu"),
            _conv(1, 2),
            _FLATTEN,
            {"type": "dense", "units": 1},
        ],
        "loss": "mse",
    },
    params=[
        {"w": [[[[1, -1], [0, 1]]]], "b": [-1]},
        {"w": [[[[1, 0], [-1, 2]]]], "b": [0]},
        {},
        {"w": [[1, -1, 2, 1]], "b": [0]},
    ],
    input=[[[1, 0, 2, 1], [2, 1, 0, 3], [0, 3, 1, 1], [1, 2, 2, 0]]],
    target=[16],
)

# --------------------------------------------------------------------------- 3. max-pool

_MAXPOOL_MIDDLE = Scenario(
    id="maxpool-middle",
    title={
        "en": "A max-pool in the middle",
        "zh": "中间夹一个最大池化层",
    },
    note={
        "en": (
            "A 5×5 input goes through a 2×2 conv with ReLU (4×4), a 2×2 max-pool (2×2) and a "
            "dense layer with softmax over two classes; the loss is cross-entropy for class 0. "
            "Forward, each pooling window keeps only its largest value; backward, that one cell "
            "receives the window's whole gradient and the other three get exactly 0, so they "
            "add nothing to the filter's gradient either. At the output, softmax with "
            "cross-entropy makes dC/dz = a − y directly: the network is undecided (0.5, 0.5), so "
            "dC/dz = [−0.5, 0.5]."
        ),
        "zh": (
            "5×5 的输入依次经过带 ReLU 的 2×2 卷积（4×4）、2×2 最大池化（2×2），"
            "再进入带 softmax 的两类全连接层；损失是针对第 0 类的交叉熵。"
            "前向时，每个池化窗口只保留最大值；反向时，只有这一个格子拿到窗口的全部梯度，"
            "其余三个格子的梯度恰好是 0，因此它们对卷积核的梯度也毫无贡献。"
            "在输出端，softmax 配交叉熵直接给出 dC/dz = a − y：网络举棋不定（0.5, 0.5），"
            "所以 dC/dz = [−0.5, 0.5]。"
        ),
    },
    spec={
        "input_shape": [1, 5, 5],
        "layers": [
            _conv(1, 2, activation="relu"),
            {"type": "maxpool2d", "kernel_size": 2, "stride": 2},
            _FLATTEN,
            {"type": "dense", "units": 2, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    },
    params=[
        {"w": [[[[1, -1], [1, 0]]]], "b": [0]},
        {},
        {},
        {"w": [[1, 0, -1, 0], [0, 1, 0, 1]], "b": [0, -5]},
    ],
    input=[
        [
            [1, 0, 2, 3, 1],
            [2, 1, 0, 1, 2],
            [0, 3, 1, 2, 0],
            [1, 1, 2, 0, 3],
            [2, 0, 1, 1, 1],
        ]
    ],
    target=0,
)

# --------------------------------------------------------------------------- 4. CS231n demo

_STRIDE2_PADDING_RGB = Scenario(
    id="stride2-padding-rgb",
    title={
        "en": "RGB input, padding 1, stride 2 (the CS231n conv demo)",
        "zh": "RGB 输入、填充 1、步幅 2（CS231n 卷积演示）",
    },
    note={
        "en": (
            "The setting of the CS231n convolution demo: a 5×5×3 input padded with a ring of "
            "zeros, two 3×3×3 filters with biases 1 and 0, stride 2, so H_out = "
            "(5 + 2·1 − 3)/2 + 1 = 3 and the output is 3×3×2. Each output value is 27 products "
            "(a filter weight times an input cell, across all three channels) plus the bias. "
            "The target is chosen so that δ is a small pattern of 1, 0 and −1. Backward, δ is "
            "dilated with one zero between its cells before it meets the input (dC/dw) and the "
            "filter (dC/da_prev), and the gradient that lands on the padding ring is cropped "
            "away, because the padding is not part of the input."
        ),
        "zh": (
            "这是 CS231n 卷积演示的设置：5×5×3 的输入四周补一圈 0，两个带偏置（1 和 0）的 "
            "3×3×3 卷积核，步幅 2，所以 H_out = (5 + 2·1 − 3)/2 + 1 = 3，输出是 3×3×2。"
            "每个输出值都是 27 个乘积（卷积核权重乘输入格子，三个通道都算上）再加偏置。"
            "目标值特意选得让 δ 只由 1、0、−1 组成。反向时，δ 的相邻格子之间先插入一个 0"
            "（膨胀），再去和输入（求 dC/dw）以及卷积核（求 dC/da_prev）运算；"
            "落在填充圈上的梯度会被裁掉，因为填充不属于输入。"
        ),
    },
    spec={
        "input_shape": [3, 5, 5],
        "layers": [_conv(2, 3, stride=2, padding=1)],
        "loss": "mse",
    },
    params=[
        {
            "w": [
                [
                    [[1, 0, 0], [1, 1, 0], [0, 1, 1]],
                    [[0, 1, 0], [1, 1, 0], [-1, 1, 1]],
                    [[0, 0, 0], [0, 1, 1], [1, -1, -1]],
                ],
                [
                    [[0, 1, 1], [0, 1, 0], [0, -1, 0]],
                    [[0, -1, -1], [-1, 1, 0], [-1, 0, 1]],
                    [[-1, -1, -1], [0, 0, 1], [0, 0, 0]],
                ],
            ],
            "b": [1, 0],
        }
    ],
    input=[
        [[0, 1, 0, 2, 1], [0, 0, 1, 0, 1], [2, 1, 2, 1, 2], [0, 1, 2, 2, 0], [2, 1, 1, 2, 0]],
        [[0, 0, 0, 0, 2], [0, 1, 0, 0, 1], [2, 2, 1, 2, 2], [1, 2, 1, 1, 2], [0, 2, 0, 2, 1]],
        [[0, 1, 1, 2, 0], [2, 0, 1, 2, 1], [1, 1, 2, 1, 2], [2, 1, 2, 1, 1], [2, 1, 1, 0, 1]],
    ],
    # output z = [[[1,2,9],[8,12,12],[7,8,11]], [[2,0,2],[4,-3,-2],[-2,-3,-5]]] minus δ
    target=[
        [[0, 2, 10], [8, 11, 12], [8, 8, 10]],
        [[2, -1, 2], [3, -3, -1], [-2, -2, -5]],
    ],
)

# --------------------------------------------------------------------------- 5. edge filters

_EDGE_FILTERS = Scenario(
    id="edge-filters",
    title={
        "en": "Vertical and horizontal edge filters",
        "zh": "竖直边缘与水平边缘滤波器",
    },
    note={
        "en": (
            "The 6×6 image is bright (10) in its left half and dark (0) in its right half. "
            "The vertical-edge filter, [1, 0, −1] in each row, answers 30 in the two middle "
            "columns, where its window straddles the edge, and 0 where the image is flat; the "
            "horizontal-edge filter answers 0 everywhere, because nothing changes from top to "
            "bottom. The target asks for an edge response of 20, so δ = 10 on the edge columns "
            "only: the vertical filter's dC/dw is [800, 400, 0] in every row, largest where its "
            "window lay on the bright side, while the horizontal filter, already right, gets a "
            "gradient of exactly 0."
        ),
        "zh": (
            "这张 6×6 图像左半边亮（10），右半边暗（0）。竖直边缘滤波器每一行都是 [1, 0, −1]，"
            "窗口跨在边缘上的中间两列输出 30，图像平坦的地方输出 0；"
            "水平边缘滤波器处处输出 0，因为从上到下没有任何变化。目标要求边缘响应为 20，"
            "所以只有边缘那两列的 δ = 10：竖直滤波器的 dC/dw 每一行都是 [800, 400, 0]，"
            "左列的窗口始终落在亮区，所以最大；水平滤波器已经是对的，梯度恰好为 0。"
        ),
    },
    spec={
        "input_shape": [1, 6, 6],
        "layers": [_conv(2, 3)],
        "loss": "mse",
    },
    params=[
        {
            "w": [
                [[[1, 0, -1], [1, 0, -1], [1, 0, -1]]],
                [[[1, 1, 1], [0, 0, 0], [-1, -1, -1]]],
            ],
            "b": [0, 0],
        }
    ],
    input=[[[10, 10, 10, 0, 0, 0] for _ in range(6)]],
    target=[
        [[0, 20, 20, 0] for _ in range(4)],
        [[0, 0, 0, 0] for _ in range(4)],
    ],
)

# --------------------------------------------------------------------------- 6. valid/same/stride
# One input and one filter, three networks: "valid", "same" and stride 2.

_SHAPES_INPUT = [
    [
        [1, 0, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 1],
    ]
]
_SHAPES_PARAMS = [{"w": [[[[0, 1, 0], [1, 2, 1], [0, 1, 0]]]], "b": [0]}]
_SHAPES_COMMON_EN = (
    "This scenario and the two around it share one 6×6 input and one 3×3 filter; only padding "
    "and stride change. "
)
_SHAPES_COMMON_ZH = (
    "这个场景和相邻的两个场景用同一个 6×6 输入、同一个 3×3 卷积核，只改变填充和步幅。"
)


def _zeros(n: int) -> list:
    return [[[0] * n for _ in range(n)]]


_CONV_VALID = Scenario(
    id="conv-valid",
    title={
        "en": "“Valid” convolution: no padding, the output shrinks",
        "zh": "“valid” 卷积：不填充，输出变小",
    },
    note={
        "en": _SHAPES_COMMON_EN
        + (
            "Without padding the filter fits (6 − 3)/1 + 1 = 4 times per axis, so the output is "
            "4×4. The target is 0 everywhere, so δ equals the output itself. Backward, each "
            "input cell collects w·δ from every window that covered it: one window for a "
            "corner, up to nine in the middle, where dC/da_prev peaks at 28."
        ),
        "zh": _SHAPES_COMMON_ZH
        + (
            "不填充时，卷积核在每个方向上能放 (6 − 3)/1 + 1 = 4 次，所以输出是 4×4。"
            "目标处处为 0，所以 δ 就等于输出本身。反向时，每个输入格子从覆盖过它的每个窗口"
            "各收到一份 w·δ：角上只有一个窗口，中间最多九个，dC/da_prev 在中间达到最大值 28。"
        ),
    },
    spec={
        "input_shape": [1, 6, 6],
        "layers": [_conv(1, 3, padding="valid")],
        "loss": "mse",
    },
    params=_SHAPES_PARAMS,
    input=_SHAPES_INPUT,
    target=_zeros(4),
)

_CONV_SAME = Scenario(
    id="conv-same",
    title={
        "en": "“Same” convolution: padding 1 keeps the size",
        "zh": "“same” 卷积：填充 1，尺寸不变",
    },
    note={
        "en": _SHAPES_COMMON_EN
        + (
            "Padding 1 adds a ring of zeros, so (6 + 2·1 − 3)/1 + 1 = 6 and the output is 6×6 "
            "like the input; border outputs are smaller because part of their window is "
            "padding. Backward, the full convolution runs on the padded 8×8 geometry and the "
            "outer ring is cropped away: the padding zeros are constants, not inputs."
        ),
        "zh": _SHAPES_COMMON_ZH
        + (
            "填充 1 就是在四周补一圈 0，于是 (6 + 2·1 − 3)/1 + 1 = 6，输出和输入一样是 6×6；"
            "边上的输出偏小，因为窗口有一部分落在填充上。反向时，完全卷积在补过边的 8×8 "
            "网格上进行，再把最外一圈裁掉：填充的 0 是常数，不是输入。"
        ),
    },
    spec={
        "input_shape": [1, 6, 6],
        "layers": [_conv(1, 3, padding="same")],
        "loss": "mse",
    },
    params=_SHAPES_PARAMS,
    input=_SHAPES_INPUT,
    target=_zeros(6),
)

_CONV_STRIDE2 = Scenario(
    id="conv-stride2",
    title={
        "en": "Stride 2: the last row and column are never seen",
        "zh": "步幅 2：最后一行和最后一列从未被看到",
    },
    note={
        "en": _SHAPES_COMMON_EN
        + (
            "With stride 2 and no padding the filter jumps two cells at a time: "
            "floor((6 − 3)/2) + 1 = 2, so the output is 2×2. The windows start at rows and "
            "columns 0 and 2 and stop at 4, so the 1s in the bottom row never enter any window: "
            "they do not change the output and their gradient is exactly 0. Backward, δ is "
            "dilated with one zero between its cells (2×2 → 3×3) before it slides over the "
            "input to give dC/dw."
        ),
        "zh": _SHAPES_COMMON_ZH
        + (
            "步幅 2、不填充时，卷积核一次跳两格：floor((6 − 3)/2) + 1 = 2，所以输出是 2×2。"
            "窗口从第 0、2 行（列）开始，到第 4 行（列）为止，最下面一行的两个 1 从未进入"
            "任何窗口：它们不影响输出，梯度也恰好是 0。反向时，先在 δ 的格子之间插入一个 0"
            "（2×2 → 3×3），再让它在输入上滑动，得到 dC/dw。"
        ),
    },
    spec={
        "input_shape": [1, 6, 6],
        "layers": [_conv(1, 3, stride=2, padding="valid")],
        "loss": "mse",
    },
    params=_SHAPES_PARAMS,
    input=_SHAPES_INPUT,
    target=_zeros(2),
)

# --------------------------------------------------------------------------- 7. correlate/convolve

_CORRELATE_CONVOLVE = Scenario(
    id="correlate-convolve",
    title={
        "en": "Correlation forward, convolution backward",
        "zh": "前向是互相关，反向是卷积",
    },
    note={
        "en": (
            "The conv layer computes a cross-correlation: sliding [[10, 20], [30, 40]] over "
            "[[1, 2, 3], [4, 5, 6], [7, 8, 9]] gives [[370, 470], [670, 770]], whereas a true "
            "convolution (the filter turned by 180°) would give [[230, 330], [530, 630]]. "
            "Backward, dC/da_prev is the full convolution of δ with the filter, which is the "
            "same as the full correlation with the filter turned by 180°: that is where the "
            "rotation comes from. The sigmoid sits on the dense output, not on the conv: at "
            "z = 370 it is exactly 1.0 in float64 and its slope is 0, so nothing would flow "
            "back; the dense bias −35 puts z at 0, where the slope σ′ = 0.25 is largest."
        ),
        "zh": (
            "卷积层算的其实是互相关：把 [[10, 20], [30, 40]] 在 [[1, 2, 3], [4, 5, 6], "
            "[7, 8, 9]] 上滑动，得到 [[370, 470], [670, 770]]；真正的卷积（先把卷积核旋转 "
            "180°）得到的是 [[230, 330], [530, 630]]。反向时，dC/da_prev 是 δ 与卷积核的"
            "完全卷积，也就是 δ 与旋转 180° 后的卷积核做完全互相关——“旋转”正是从这里来的。"
            "sigmoid 放在全连接输出上而不是卷积层上：z = 370 时 sigmoid 在 float64 中恰好"
            "等于 1.0，斜率为 0，梯度根本传不回去；全连接的偏置 −35 让 z 正好为 0，"
            "此时斜率 σ′ = 0.25 最大。"
        ),
    },
    spec={
        "input_shape": [1, 3, 3],
        "layers": [_conv(1, 2), _FLATTEN, {"type": "dense", "units": 1, "activation": "sigmoid"}],
        "loss": "mse",
    },
    params=[
        {"w": [[[[10, 20], [30, 40]]]], "b": [0]},
        {},
        {"w": [[0.5, 0.5, 0, -0.5]], "b": [-35]},
    ],
    input=[[[1, 2, 3], [4, 5, 6], [7, 8, 9]]],
    target=[1],
)

# ------------------------------------------------------------------------- 8. overlapping max-pool

_OVERLAPPING_MAXPOOL = Scenario(
    id="overlapping-maxpool",
    title={
        "en": "Overlapping max-pool: gradients add up",
        "zh": "重叠的最大池化：梯度会累加",
    },
    note={
        "en": (
            "2×2 windows with stride 1 overlap on the 4×5 input and give a 3×4 output. The 9 "
            "(second row, second column) is the maximum of four windows, so backward it "
            "receives the sum of their four δ values: 1 + 2 − 2 + 1 = 2. The two 5s at the end "
            "of the second row tie in two windows; as in PyTorch, the first one in reading "
            "order wins, so the left 5 collects gradient from four windows and the right 5 "
            "gets exactly 0."
        ),
        "zh": (
            "2×2 窗口以步幅 1 在 4×5 的输入上滑动，窗口互相重叠，输出是 3×4。"
            "第二行第二列的 9 是四个窗口的最大值，所以反向时它收到这四个 δ 的和："
            "1 + 2 − 2 + 1 = 2。第二行末尾的两个 5 在两个窗口里打成平手；和 PyTorch 一样，"
            "按阅读顺序第一个最大值胜出，所以左边的 5 从四个窗口收集梯度，右边的 5 恰好为 0。"
        ),
    },
    spec={
        "input_shape": [1, 4, 5],
        "layers": [{"type": "maxpool2d", "kernel_size": 2, "stride": 1}],
        "loss": "mse",
    },
    params=[{}],
    input=[
        [
            [1, 3, 2, 1, 0],
            [2, 9, 4, 5, 5],
            [0, 2, 1, 3, 2],
            [4, 1, 6, 2, 1],
        ]
    ],
    # output [[9,9,5,5],[9,9,5,5],[4,6,6,3]] minus δ [[1,2,-1,1],[-2,1,2,1],[1,-1,2,3]]
    target=[[[8, 7, 6, 4], [11, 8, 3, 4], [3, 7, 4, 0]]],
)

# --------------------------------------------------------------------------- 9. average pool

_AVGPOOL = Scenario(
    id="avgpool",
    title={
        "en": "Average pool: the gradient is shared equally",
        "zh": "平均池化：梯度平均分给窗口里的每个格子",
    },
    note={
        "en": (
            "Each 2×2 window of the 4×4 input is replaced by its mean, for example "
            "(1 + 3 + 5 + 7)/4 = 4. Backward, every cell of a window gets the same share "
            "δ/(2·2): the top-left window has δ = 2, so each of its four cells receives 0.5. "
            "Unlike max-pool, no cell is left out, and a window's four shares add back up to "
            "its δ."
        ),
        "zh": (
            "4×4 输入的每个 2×2 窗口都被替换成它的平均值，例如 (1 + 3 + 5 + 7)/4 = 4。"
            "反向时，窗口里每个格子都分到同样的一份 δ/(2·2)：左上角窗口的 δ = 2，"
            "所以它的四个格子各得 0.5。和最大池化不同，没有哪个格子被落下，"
            "一个窗口的四份梯度加起来正好等于它的 δ。"
        ),
    },
    spec={
        "input_shape": [1, 4, 4],
        "layers": [{"type": "avgpool2d", "kernel_size": 2}],
        "loss": "mse",
    },
    params=[{}],
    input=[[[1, 3, 2, 2], [5, 7, 4, 0], [0, 2, 6, 6], [4, 2, 6, 6]]],
    target=[[[2, 3], [0, 5]]],
)

# --------------------------------------------------------------------------- 12. residual block

_RESIDUAL = Scenario(
    id="residual-block",
    title={
        "en": "A residual block: the skip adds the input back",
        "zh": "残差块：跳跃连接把输入加回来",
    },
    note={
        "en": (
            "F is one 3×3 conv (padding 1) whose kernel reads the cell above, the cell to the "
            "left and −2 × the cell itself; the block adds the input back before its ReLU, so "
            "z = F(x) + x, e.g. at row 1, column 2: 3 + 0 = 3. Backward, the add passes dC/dz "
            "unchanged to both paths: down F (the full convolution with the rotated kernel) "
            "and along the skip (dC/dz itself). At the input they add: at row 1, column 2, "
            "dC/da_prev = −4 (F path) + 2 (skip) = −2."
        ),
        "zh": (
            "F 是一个 3×3 卷积（padding 1），卷积核取上方格子、左边格子和 −2 × 自身；"
            "残差块在 ReLU 之前把输入加回来，所以 z = F(x) + x，例如第 1 行第 2 列：3 + 0 = 3。"
            "反向时，加法把 dC/dz 原样传给两条路径：沿 F 往下（与旋转后的卷积核做完全卷积），"
            "以及沿跳跃连接（就是 dC/dz 本身）。两份梯度在输入处相加：第 1 行第 2 列的 "
            "dC/da_prev = −4（F 路径）+ 2（跳跃）= −2。"
        ),
    },
    spec={
        "input_shape": [1, 4, 4],
        "layers": [
            {
                "type": "residual",
                "layers": [_conv(1, 3, padding=1)],
                "activation": "relu",
                "projection": None,
            }
        ],
        "loss": "mse",
    },
    params=[{"layers.0.w": [[[[0, 1, 0], [1, -2, 0], [0, 0, 0]]]], "layers.0.b": [0]}],
    input=[[[1, 0, 2, 1], [3, 1, 0, 2], [0, 2, 1, 1], [2, 1, 3, 0]]],
    target=[[[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]],
)

# --------------------------------------------------------------------------- 13. two branches

_INCEPTION = Scenario(
    id="inception-branches",
    title={
        "en": "Two branches side by side, concatenated (Inception)",
        "zh": "两个并排的分支，按通道拼接（Inception）",
    },
    note={
        "en": (
            "The same 3×3 input goes through two branches: a 1×1 conv that doubles every cell, "
            "and a 3×3 conv with padding 1 that adds the four neighbours and subtracts 1. "
            "Their outputs are stacked as channels 0 and 1 of a 2×3×3 output. Backward, "
            "dC/dz is sliced: channel 0 goes to the 1×1 branch, channel 1 to the 3×3 branch, "
            "and the two input gradients add: at row 1, column 2, dC/da_prev = 2 (1×1 branch: "
            "2 × 1) + 1 (3×3 branch: the neighbour's 1) = 3."
        ),
        "zh": (
            "同一个 3×3 输入走两个分支：一个 1×1 卷积把每个格子乘 2，"
            "一个 padding 1 的 3×3 卷积把四个邻居相加再减 1。"
            "两个输出按通道叠成 2×3×3 的输出（通道 0 和通道 1）。"
            "反向时，dC/dz 被切开：通道 0 交给 1×1 分支，通道 1 交给 3×3 分支，"
            "两份输入梯度再相加：第 1 行第 2 列的 dC/da_prev = 2（1×1 分支：2 × 1）"
            "+ 1（3×3 分支：邻居的 1）= 3。"
        ),
    },
    spec={
        "input_shape": [1, 3, 3],
        "layers": [
            {
                "type": "concat",
                "branches": [[_conv(1, 1)], [_conv(1, 3, padding=1)]],
            }
        ],
        "loss": "mse",
    },
    params=[
        {
            "branches.0.0.w": [[[[2]]]],
            "branches.0.0.b": [0],
            "branches.1.0.w": [[[[0, 1, 0], [1, 0, 1], [0, 1, 0]]]],
            "branches.1.0.b": [-1],
        }
    ],
    input=[[[1, 2, 0], [0, 1, 3], [2, 1, 1]]],
    target=[[[1, 4, 0], [0, 2, 5], [4, 2, 2]], [[1, 3, 4], [3, 4, 3], [0, 3, 3]]],
)

# --------------------------------------------------------------------------- registry

SCENARIOS: dict[str, Scenario] = {
    s.id: s
    for s in (
        _CONV_DENSE,
        _TWO_CONV,
        _MAXPOOL_MIDDLE,
        _STRIDE2_PADDING_RGB,
        _EDGE_FILTERS,
        _CONV_VALID,
        _CONV_SAME,
        _CONV_STRIDE2,
        _CORRELATE_CONVOLVE,
        _OVERLAPPING_MAXPOOL,
        _AVGPOOL,
        _RESIDUAL,
        _INCEPTION,
    )
}

# Which item (1..9) of the list of worked examples in issue 2 each scenario covers; item 6
# ("valid" vs "same", and stride 2, on one input) is three networks, so three scenarios.
# 10 and 11 are issue 14's blocks (a residual block, an Inception-style concat).
ITEMS: dict[str, int] = {
    "conv-dense": 1,
    "two-conv": 2,
    "maxpool-middle": 3,
    "stride2-padding-rgb": 4,
    "edge-filters": 5,
    "conv-valid": 6,
    "conv-same": 6,
    "conv-stride2": 6,
    "correlate-convolve": 7,
    "overlapping-maxpool": 8,
    "avgpool": 9,
    "residual-block": 10,  # issue 14's two blocks, after issue 2's nine items
    "inception-branches": 11,
}


def get(id: str) -> Scenario:
    """The scenario with this id; KeyError listing the known ids otherwise."""
    try:
        return SCENARIOS[id]
    except KeyError:
        raise KeyError(
            f"unknown scenario {id!r}; known scenarios: {', '.join(SCENARIOS)}"
        ) from None
