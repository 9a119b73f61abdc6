"""Networks: ablate's CNN family, resnet18, your own network, transfer learning and where starting weights come from."""
