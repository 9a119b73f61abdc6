"""Datasets: loading, checking and subsetting the images a study trains and tests on."""
