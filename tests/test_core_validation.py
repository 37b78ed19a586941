"""The shared argument checks of ``robustjax.core.validation``."""

import numpy as np
import pytest

from robustjax.core.validation import check_positive_int, check_positive_ints


def test_positive_ints_broadcast_and_sequences():
    assert check_positive_ints(2, 3, name="strides") == (2, 2, 2)
    assert check_positive_ints(np.int64(3), 2, name="strides") == (3, 3)
    assert check_positive_ints(None, 2, name="dilation") == (1, 1)
    assert check_positive_ints([1, 2], 2, name="dilation") == (1, 2)
    assert check_positive_ints((np.int32(2), 3), 2, name="strides") == (2, 3)


@pytest.mark.parametrize("value", [0, -1, (1,), (1, 2, 3), (1, 0), "ab", True, 1.5j])
def test_positive_ints_reject_bad_values_naming_the_argument(value):
    with pytest.raises(ValueError, match="strides"):
        check_positive_ints(value, 2, name="strides")


def test_positive_int_minimum():
    assert check_positive_int(3, name="steps") == 3
    with pytest.raises(ValueError, match="steps"):
        check_positive_int(0, name="steps")


def test_num_classes_of_reads_the_output_shape_and_rejects_other_maps():
    import jax.numpy as jnp

    from robustjax.core.validation import num_classes_of

    x = jnp.zeros((4, 3, 3, 1))
    assert num_classes_of(lambda z: jnp.zeros((z.shape[0], 7)), x) == 7
    with pytest.raises(ValueError, match="logits_fn"):
        num_classes_of(lambda z: jnp.zeros((z.shape[0],)), x)  # no class axis
    with pytest.raises(ValueError, match="logits_fn"):
        num_classes_of(lambda z: jnp.zeros((2, 7)), x)  # batch size changed
