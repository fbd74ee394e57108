from sensecf.cli import main

main()
