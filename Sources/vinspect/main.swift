import VisualInspection
print("vinspect")
