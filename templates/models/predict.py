"""A starter Python model: sums each input vector.

Deploy it with:
  clipper deploy-model sum-model --version 1 --input-type doubles --framework python \
      --predict templates/models/predict.py:predict --link sum
"""


def predict(inputs):
    # `inputs` is a batch: a 2-D numpy array when all inputs have the same length, else a list of
    # 1-D arrays. Return one output per input; strings are sent as they are, other values as JSON.
    return [float(x.sum()) for x in inputs]
