"""The tensorflow processor's tensor path: request tensors in aligned memory go to the model without a
copy and through the signature's graph order, others through TensorFlow's own call, with the same answers."""

import numpy as np
import pytest

from pai_lab.serving import wire

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    import tensorflow as tf

    from pai_lab.serving.processors.tensorflow import TensorFlowProcessor

    class Two(tf.Module):
        # declared b before a: the graph takes them in another order than they are declared
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 3], tf.float32, name="b"),
                tf.TensorSpec([None, 3], tf.float32, name="a"),
            ]
        )
        def diff(self, b, a):
            return {"b_minus_a": b - a, "a_twice": a * 2}

    folder = tmp_path_factory.mktemp("two-inputs") / "model"
    module = Two()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.diff})
    return TensorFlowProcessor(str(folder))


def aligned(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    arr = wire.aligned_buffer(values.nbytes).view(np.float32).reshape(values.shape)
    arr[...] = values
    return arr


def test_aligned_and_unaligned_inputs_get_the_same_answers(processor):
    a, b = [[1, 2, 3], [4, 5, 6]], [[10, 10, 10], [0, 0, 0]]
    want = {"b_minus_a": np.float32(b) - np.float32(a), "a_twice": np.float32(a) * 2}
    unaligned = np.frombuffer(bytearray(4 + 24), dtype=np.float32, count=6, offset=4).reshape(2, 3).copy()
    unaligned[...] = a
    for inputs in (
        {"a": aligned(a), "b": aligned(b)},  # the instance's request tensors: taken without a copy
        {"a": unaligned, "b": np.float32(b)},
        {"a": np.float32(a)[:, ::-1][:, ::-1], "b": np.float32(b)},  # a view that is not C-ordered
    ):
        got = processor.predict(None, inputs, None)
        assert got.keys() == want.keys()
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_inputs_that_do_not_fit_the_signature_are_refused_as_before(processor):
    with pytest.raises(TypeError):
        processor.predict(None, {"a": aligned([[1, 2, 3]])}, None)  # b is missing
    got = processor.predict(None, {"a": aligned([[1, 2, 3]]), "b": aligned([[1, 1, 1]])}, ["a_twice"])
    assert list(got) == ["a_twice"]
