"""The engines that run the network, and the choice between them on the machine cbir runs on.

``table`` names every engine and parses ``--runtime``; ``machine`` says which CPU this is;
``files`` and ``fidelity`` are the exports and the bars they must clear; ``keras_engine``,
``litert_engine`` and ``openvino_engine`` run the network; ``prepare`` makes the exports (in child
processes, so their memory is given back); ``measure`` checks and times every candidate once per
machine and ``profile`` keeps and reads that verdict; ``load`` gives a command the engine to use.
"""
