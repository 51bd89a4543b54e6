*** Settings ***
Documentation     Power and console of the widget board; as shipped, the simulated one of
...               .jumpstarter/local-config.yaml. Run with: robot examples/hardware_tests/
...               (pip install robotframework; PYTHONPATH must reach JumpstarterLibrary).
Library           JumpstarterLibrary
Suite Setup       Connect To Exporter    selector=vendor=acme,model=widget-v2
Suite Teardown    Release

*** Test Cases ***
Power Cycle Boots The Board
    Power On
    ${output}=    Read Serial Until    boot complete
    Should Contain    ${output}    Starting kernel
    Power Cycle
    ${output}=    Read Serial Until    boot complete    timeout=30s
    Should Contain    ${output}    U-Boot
    Power Off

Console Answers A Command
    Power On
    Read Serial Until    boot complete
    Read Serial Until    :~#
    Write Serial    uname -r    newline=True
    ${output}=    Read Serial Until    [0-9]+\\.[0-9]+\\S*-sim    regexp=True
    Should Contain    ${output}    6.1.0-sim
    [Teardown]    Power Off

Power State Follows
    Power On
    ${state}=    Get Power State
    Should Be Equal    ${state}    on
    Power Off
    ${state}=    Get Power State
    Should Be Equal    ${state}    off
