import torch

from realfill.modules.loss import known_region_weight, masked_mse


def test_known_region_weight_is_zero_wherever_a_latent_cell_touches_the_hole():
    known = torch.ones(1, 1, 16, 16)
    known[..., 5, 9] = 0.0  # one unknown pixel in latent cell (1, 2) at factor 4
    weight = known_region_weight(known, (4, 4))
    expected = torch.ones(1, 1, 4, 4)
    expected[..., 1, 2] = 0.0
    assert torch.equal(weight, expected)


def test_masked_mse_ignores_zero_weight_elements_and_averages_the_rest():
    prediction = torch.zeros(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    target[..., 0, 0] = 1000.0  # error only where the weight is 0
    target[..., 1, 1] = 2.0
    weight = torch.ones(1, 1, 2, 2)
    weight[..., 0, 0] = 0.0
    # 2 channels x 3 weighted cells; squared error 4 in 2 of those 6 elements
    assert torch.isclose(masked_mse(prediction, target, weight), torch.tensor(8.0 / 6.0))


def test_masked_mse_of_an_all_unknown_batch_is_zero_not_nan():
    loss = masked_mse(torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 2, 2))
    assert loss.item() == 0.0
